"""``VideoPartitionsDataset`` keeps one file per video, written atomically.

A folder holds ``<video_uid>.json`` or ``<video_uid>.npz`` partitions. Saving
takes a mapping of video uid to a value or a zero-argument callable (lazy
saving: the work runs when its partition is written, so only one video's result
is in memory at a time). With ``skip_existing`` a partition already on disk is
neither recomputed nor rewritten, which is how reruns resume.

A value that is a :class:`~action100m.errors.VideoFailure` is written to
``_errors/<video_uid>.json`` instead; loading returns it in place of the video's
result, so later stages pass it on and the export lists it.

A save that ends with every video's partition in place writes ``_SUCCESS``; a
save that starts removes it. The dataset "exists" for Kedro only with that
marker, so ``kedro run --only-missing-outputs`` reruns a node exactly when some
video lacks its output (a crash mid-save, a recorded failure), and the per-video
skip then computes only those videos.

Example YAML::

    segment_trees:
      type: action100m.datasets.VideoPartitionsDataset
      path: data/07_model_output/intermediate/segment_trees
      format: json
"""

from __future__ import annotations

import io
import json
import logging
import posixpath
from collections.abc import Callable
from typing import Any

import fsspec
import numpy as np
from kedro.io import AbstractDataset, DatasetError

from action100m.datasets.atomic import atomic_open
from action100m.errors import VideoFailure

logger = logging.getLogger(__name__)
ERRORS_FOLDER = "_errors"
DONE_MARKER = "_SUCCESS"


def check_partition_id(video_uid: str) -> str:
    """Reject ids that could escape the dataset's folder."""
    bad = (
        not video_uid
        or video_uid in {".", ".."}
        or "/" in video_uid
        or "\\" in video_uid
        or "\x00" in video_uid
        or video_uid.startswith(".")
    )
    if bad:
        raise DatasetError(f"unsafe partition id {video_uid!r}")
    return video_uid


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


class PartitionLoaders(dict):
    """``video_uid -> loader`` mapping; ``failed`` names the recorded failures."""

    def __init__(self, *args: Any, failed: set[str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.failed = set(failed or ())


def load_upstream(
    loaders: PartitionLoaders, video: dict[str, Any], stage: str, what: str
) -> Any:
    """A video's output of the previous stage, or the failure to pass on.

    Args:
        loaders: The previous stage's partitions.
        video: The video's manifest row.
        stage: The stage asking (named in a new failure).
        what: What is missing, for the message (e.g. "segment tree").

    Returns:
        The loaded partition, its recorded failure, or a new failure if absent.
    """
    uid = video["video_uid"]
    if uid not in loaders:
        return VideoFailure(uid, stage, f"no {what}", video.get("path"))
    return loaders[uid]()


class VideoPartitionsDataset(AbstractDataset[dict[str, Any], PartitionLoaders]):
    """One JSON or NPZ file per video, loaded lazily, saved lazily and atomically.

    Args:
        path: Folder path or fsspec URL.
        format: ``json`` (dicts), ``npz`` (dicts of arrays) or ``bytes`` (raw
            bytes, e.g. PNG; str is written as UTF-8).
        suffix: File name ending of the partitions (default ``.json``/``.npz``),
            e.g. ``.cuts.json`` to read ``<uid>.cuts.json`` files.
        skip_existing: Do not recompute or rewrite partitions already on disk.
        credentials: Passed to the fsspec filesystem.
        fs_args: Extra fsspec filesystem arguments.
        metadata: Free-form metadata (ignored by Kedro).
    """

    def __init__(
        self,
        *,
        path: str,
        format: str = "json",  # noqa: A002 - the catalog's word
        suffix: str | None = None,
        skip_existing: bool = True,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if format not in ("json", "npz", "bytes"):
            raise DatasetError(f"format must be json, npz or bytes, not {format!r}")
        self._path = str(path)
        self._format = format
        self._suffix = suffix or f".{format}"
        self._skip_existing = skip_existing
        self._fs, self._root = fsspec.core.url_to_fs(
            self._path, **(credentials or {}), **(fs_args or {})
        )
        self.metadata = metadata

    # ------------------------------------------------------------------ paths
    def partition_path(self, video_uid: str) -> str:
        check_partition_id(video_uid)
        return posixpath.join(self._root, f"{video_uid}{self._suffix}")

    def error_path(self, video_uid: str) -> str:
        check_partition_id(video_uid)
        return posixpath.join(self._root, ERRORS_FOLDER, f"{video_uid}.json")

    def _list(self, folder: str, suffix: str) -> list[str]:
        if not self._fs.isdir(folder):
            return []
        names = [posixpath.basename(p) for p in self._fs.ls(folder, detail=False)]
        return sorted(
            n[: -len(suffix)]
            for n in names
            if n.endswith(suffix) and not n.startswith(".")
        )

    # --------------------------------------------------------------- reading
    def _read(self, path: str) -> Any:
        with self._fs.open(path, "rb") as handle:
            raw = handle.read()
        if self._format == "bytes" and ERRORS_FOLDER not in path:
            return raw
        if path.endswith(".npz"):
            with np.load(io.BytesIO(raw), allow_pickle=False) as data:
                return {key: data[key] for key in data.files}
        return json.loads(raw)

    def _read_failure(self, path: str) -> VideoFailure:
        return VideoFailure.from_dict(self._read(path))

    def load(self) -> PartitionLoaders:
        loaders: dict[str, Callable[[], Any]] = {}
        failed = set()
        for uid in self._list(posixpath.join(self._root, ERRORS_FOLDER), ".json"):
            path = self.error_path(uid)
            loaders[uid] = lambda path=path: self._read_failure(path)
            failed.add(uid)
        for uid in self._list(self._root, self._suffix):
            path = self.partition_path(uid)
            loaders[uid] = lambda path=path: self._read(path)
            failed.discard(uid)
        return PartitionLoaders(sorted(loaders.items()), failed=failed)

    def exists_partition(self, video_uid: str) -> bool:
        return self._fs.exists(self.partition_path(video_uid))

    # --------------------------------------------------------------- writing
    def _write(self, path: str, value: Any) -> None:
        with atomic_open(self._fs, path) as handle:
            if isinstance(value, bytes | str):
                handle.write(value.encode() if isinstance(value, str) else value)
            elif path.endswith(".npz"):
                buffer = io.BytesIO()
                np.savez(buffer, **{k: np.asarray(v) for k, v in value.items()})
                handle.write(buffer.getvalue())
            else:
                handle.write(
                    json.dumps(value, ensure_ascii=False, default=_to_jsonable).encode()
                )

    def save(self, data: dict[str, Any]) -> None:
        written = skipped = failed = 0
        marker = posixpath.join(self._root, DONE_MARKER)
        if self._fs.exists(marker):
            self._fs.rm(marker)
        for uid, item in data.items():
            path = self.partition_path(uid)
            if self._skip_existing and self._fs.exists(path):
                skipped += 1
                continue
            value = item() if callable(item) else item
            if isinstance(value, VideoFailure):
                self._write(self.error_path(uid), value.to_dict())
                failed += 1
                continue
            self._write(path, value)
            if self._fs.exists(self.error_path(uid)):
                self._fs.rm(self.error_path(uid))
            written += 1
        if not failed:
            with atomic_open(self._fs, marker) as handle:
                handle.write(json.dumps({"videos": written + skipped}).encode())
        logger.info(
            "%s: %d written, %d already done, %d failed",
            self._path,
            written,
            skipped,
            failed,
        )

    def _exists(self) -> bool:
        return self._fs.exists(posixpath.join(self._root, DONE_MARKER))

    def _describe(self) -> dict[str, Any]:
        return {
            "path": self._path,
            "format": self._format,
            "skip_existing": self._skip_existing,
        }
