"""``VideoFolderDataset`` lists the videos of a folder (local or fsspec URL).

Loading decodes nothing: it returns :class:`~action100m.video.VideoSource`
handles (path plus ``<stem>.json`` / ``.srt`` / ``.vtt`` sidecars); the stages
stream frames from them.

Example YAML::

    videos:
      type: action100m.datasets.VideoFolderDataset
      path: s3://bucket/videos
      extensions: [".mp4", ".mkv"]
      credentials: videos   # fsspec options from credentials.yml

Every :class:`~action100m.video.VideoSource` carries the credentials and
``fs_args`` as its storage options, so probing, decoding and sidecar reads, on
this machine or on a Ray worker, open the files with them.
"""

from __future__ import annotations

import posixpath
from typing import Any

import fsspec
from kedro.io import AbstractDataset, DatasetError

from action100m.video import VideoSource

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

    def load(self) -> list[VideoSource]:
        if not self._fs.isdir(self._root):
            raise DatasetError(f"video folder {self._path} does not exist")
        found = self._fs.find(self._root, maxdepth=None if self._recursive else 1)
        by_stem: dict[str, list[str]] = {}
        videos = []
        for path in sorted(found):
            stem, ext = posixpath.splitext(path)
            ext = ext.lower()
            if ext in SIDECAR_EXTENSIONS:
                by_stem.setdefault(stem, []).append(self._url(path))
            elif ext in self._extensions:
                videos.append((stem, path))
        return [
            VideoSource(
                video_uid=posixpath.basename(stem),
                path=self._url(path),
                sidecars=tuple(by_stem.get(stem, ())),
                storage_options=self._storage_options,
            )
            for stem, path in videos
        ]

    def save(self, data: None) -> None:
        raise DatasetError("VideoFolderDataset is read-only")

    def _exists(self) -> bool:
        return self._fs.isdir(self._root)

    def _describe(self) -> dict[str, Any]:
        return {"path": self._path, "extensions": self._extensions}
