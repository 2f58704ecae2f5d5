"""``VideoFolderDataset`` lists the videos of a folder (local or fsspec URL).

Loading decodes nothing: it returns :class:`~action100m.media.video.VideoSource`
handles (path plus ``<stem>.json`` / ``.srt`` / ``.vtt`` sidecars); the stages
stream frames from them. The listing also names every file it skips (a video
name with no usable stem, a sidecar without its video) and every symbolic link
that points outside the folder, so ingest can record each with its reason.

Example YAML::

    videos:
      type: action100m.datasets.VideoFolderDataset
      path: s3://bucket/videos
      extensions: [".mp4", ".mkv"]
      credentials: videos   # fsspec options from credentials.yml

Every :class:`~action100m.media.video.VideoSource` carries the credentials and
``fs_args`` as its storage options, so probing, decoding and sidecar reads, on
this machine or on a Ray worker, open the files with them.
"""

from __future__ import annotations

import os
import posixpath
from typing import Any

import fsspec
from kedro.io import AbstractDataset, DatasetError

from action100m.media.video import VideoSource

VIDEO_EXTENSIONS = (
    ".mp4",
    ".mkv",
    ".webm",
    ".mov",
    ".avi",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".flv",
    ".ts",
)
SIDECAR_EXTENSIONS = (".json", ".srt", ".vtt")
GROUND_TRUTH_SUFFIX = ".cuts.json"  # read by evaluation, not a sidecar


class VideoListing(list):
    """The videos of a folder, plus what was skipped and where links lead.

    Attributes:
        skipped: ``{name, path, reason}`` of each file that is not used.
        outside: ``path -> target`` of each link that leaves the folder.
    """

    def __init__(self, videos, skipped=(), outside=None) -> None:
        super().__init__(videos)
        self.skipped = list(skipped)
        self.outside = dict(outside or {})


class VideoFolderDataset(AbstractDataset[None, list[VideoSource]]):
    """Read-only listing of the video files in a folder, with their sidecars.

    Args:
        path: Folder path or fsspec URL.
        extensions: File extensions treated as videos (case-insensitive).
        recursive: Also list sub-folders.
        credentials: Passed to the fsspec filesystem.
        fs_args: Extra fsspec filesystem arguments.
        metadata: Free-form metadata (ignored by Kedro).
    """

    def __init__(
        self,
        *,
        path: str,
        extensions: list[str] | tuple[str, ...] = VIDEO_EXTENSIONS,
        recursive: bool = False,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._path = str(path)
        self._extensions = tuple(e.lower() for e in extensions)
        self._recursive = recursive
        self._storage_options = {**(credentials or {}), **(fs_args or {})}
        self._fs, self._root = fsspec.core.url_to_fs(
            self._path, **self._storage_options
        )
        self.metadata = metadata

    def _url(self, path: str) -> str:
        return self._fs.unstrip_protocol(path) if "://" in self._path else path

    def _outside(self, paths: list[str]) -> dict[str, str]:
        """Local files whose real location is not inside the folder."""
        if "://" in self._path and not self._path.startswith("file://"):
            return {}
        root = os.path.realpath(self._root)
        found, folders = {}, {}
        for path in paths:
            folder, name = os.path.split(path)
            if folder not in folders:  # resolved once per folder
                folders[folder] = os.path.realpath(folder)
            # A file that is no link is where its resolved folder is: one lstat.
            real = (
                os.path.realpath(path)
                if os.path.islink(path)
                else os.path.join(folders[folder], name)
            )
            if os.path.commonpath([root, real]) != root:
                found[self._url(path)] = real
        return found

    def load(self) -> VideoListing:
        if not self._fs.isdir(self._root):
            raise DatasetError(f"video folder {self._path} does not exist")
        found = self._fs.find(self._root, maxdepth=None if self._recursive else 1)
        by_stem: dict[str, list[str]] = {}
        videos: list[tuple[str, str]] = []
        skipped: list[dict[str, str]] = []

        def skip(path: str, why: str) -> None:
            name = posixpath.basename(path)
            reason = f"skipped: {name!r} {why}"
            skipped.append({"name": name, "path": self._url(path), "reason": reason})

        for path in sorted(found):
            stem, ext = posixpath.splitext(path)
            ext = ext.lower()
            name = posixpath.basename(path)
            if ext in SIDECAR_EXTENSIONS:
                by_stem.setdefault(stem, []).append(path)
            elif ext in self._extensions:
                videos.append((stem, path))
            elif name.lower().endswith(self._extensions):
                skip(path, "has no usable name before its extension")
        for stem in sorted(set(by_stem) - {stem for stem, _ in videos}):
            for path in by_stem[stem]:
                if not path.lower().endswith(GROUND_TRUTH_SUFFIX):
                    skip(path, "is a sidecar without a video of the same name")
        listing = [
            VideoSource(
                video_uid=posixpath.basename(stem),
                path=self._url(path),
                sidecars=tuple(self._url(p) for p in by_stem.get(stem, ())),
                storage_options=self._storage_options,
            )
            for stem, path in videos
        ]
        used = [f for stem, p in videos for f in (p, *by_stem.get(stem, ()))]
        return VideoListing(listing, skipped, self._outside(used))

    def save(self, data: None) -> None:
        raise DatasetError("VideoFolderDataset is read-only")

    def _exists(self) -> bool:
        return self._fs.isdir(self._root)

    def _describe(self) -> dict[str, Any]:
        return {"path": self._path, "extensions": self._extensions}
