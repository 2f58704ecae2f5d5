"""``VideoPartitionsDataset`` keeps one file per video, written atomically.

A folder holds ``<video_uid>.json`` or ``<video_uid>.npz`` partitions. Saving
takes a mapping of video uid to a value or a zero-argument callable (lazy
saving: the work runs when its partition is written, so only one video's result
is in memory at a time). With ``skip_existing`` a partition already on disk is
neither recomputed nor rewritten, which is how reruns resume.

A value that is a :class:`~action100m.core.errors.VideoFailure` is written to
``_errors/<video_uid>.json`` instead; loading returns it in place of the video's
result, so later stages pass it on and the export lists it.

Each partition computed from a :class:`~action100m.runtime.executor.VideoWork` gets a
record of what made it (``_made_by/<name>.json``, see
:mod:`action100m.runtime.fingerprint`): a rerun reuses a partition only when that record
matches what the current settings would make, and recomputes it otherwise. The
dataset tells the work which videos it will compute before asking for any, so no
video whose output is reused is ever submitted.

A ``video_uid`` too long for a file name (``<uid><suffix>`` plus the atomic
writer's temp-file affixes must fit the usual 255-byte limit) is stored under a
bounded name, its first bytes plus ``~`` and a hash of the whole uid; the record
beside it keeps the full uid.

A save that ends with every video's partition in place writes ``_SUCCESS``; a
save that starts removes it. Told what the run expects (``expect``: the
manifest's videos and the fingerprint each one's record must have), the dataset
"exists" for Kedro only when every one of those videos has a partition made that
way; otherwise only with the marker. So ``kedro run --only-missing-outputs``
reruns a node exactly when some video lacks its output (a crash mid-save, a
deleted file, a recorded failure) or has one made otherwise, and the per-video
skip then computes only those videos (see :mod:`action100m.runtime.freshness`).

Example YAML::

    "intermediate_{name}":   # a dataset factory: one folder per stage output
      type: action100m.datasets.VideoPartitionsDataset
      path: data/07_model_output/intermediate/{name}
      format: json
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import posixpath
from collections.abc import Callable, Mapping
from typing import Any

import fsspec
import numpy as np
from kedro.io import AbstractDataset, DatasetError

from action100m.core.errors import VideoFailure
from action100m.datasets.atomic import atomic_open
from action100m.datasets.stale import Renewable
from action100m.runtime.fingerprint import differences

logger = logging.getLogger(__name__)
ERRORS_FOLDER = "_errors"
RECORDS_FOLDER = "_made_by"
DONE_MARKER = "_SUCCESS"
MAX_NAME_BYTES = 200  # longer uids get a hashed name (room for suffix and temp)


def partition_name(video_uid: str) -> str:
    """The file-name stem of a video's partitions: the uid, or a bounded stand-in.

    A uid of at most ``MAX_NAME_BYTES`` UTF-8 bytes is its own name; a longer one
    becomes its first ``MAX_NAME_BYTES`` bytes (cut at a character boundary) plus
    ``~`` and 16 hex digits of its SHA-256, so two long uids never share a name
    and any name longer than ``MAX_NAME_BYTES`` bytes is a stand-in.
    """
    raw = video_uid.encode("utf-8", "surrogateescape")
    if len(raw) <= MAX_NAME_BYTES:
        return video_uid
    head = raw[:MAX_NAME_BYTES].decode("utf-8", "ignore")
    return f"{head}~{hashlib.sha256(raw).hexdigest()[:16]}"


def _is_stand_in(name: str) -> bool:
    return len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES


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
    """``video_uid -> loader`` mapping; ``failed`` names the recorded failures.

    ``fingerprint(uid)`` is the fingerprint of what made the video's partition
    (``None`` without a record), for the next stage's own records.
    """

    def __init__(
        self,
        *args: Any,
        failed: set[str] | None = None,
        records: Callable[[str], dict[str, Any] | None] | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.failed = set(failed or ())
        self._records = records

    def fingerprint(self, video_uid: str) -> str | None:
        if self._records is None or video_uid not in self or video_uid in self.failed:
            return None
        record = self._records(video_uid)
        return None if record is None else record.get("fingerprint")


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


class VideoPartitionsDataset(
    Renewable, AbstractDataset[dict[str, Any], PartitionLoaders]
):
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
        self._expected: dict[str, str | None] | None = None

    @property
    def location(self) -> str:
        """Where the partitions are (as configured: a local path or a URL)."""
        return self._path

    @property
    def format(self) -> str:
        """How each partition is stored: ``json``, ``npz`` or ``bytes``."""
        return self._format

    @property
    def skip_existing(self) -> bool:
        """Whether a save leaves a video whose partition exists as it is."""
        return self._skip_existing

    # ------------------------------------------------------------------ paths
    def partition_path(self, video_uid: str) -> str:
        check_partition_id(video_uid)
        return posixpath.join(self._root, f"{partition_name(video_uid)}{self._suffix}")

    def error_path(self, video_uid: str) -> str:
        check_partition_id(video_uid)
        name = f"{partition_name(video_uid)}.json"
        return posixpath.join(self._root, ERRORS_FOLDER, name)

    def record_path(self, video_uid: str) -> str:
        check_partition_id(video_uid)
        name = f"{partition_name(video_uid)}.json"
        return posixpath.join(self._root, RECORDS_FOLDER, name)

    def made_by(self, video_uid: str) -> dict[str, Any] | None:
        """The record of what made the video's partition, if there is one."""
        try:  # one read, no separate existence check: a rerun asks per video
            return json.loads(self._fs.cat_file(self.record_path(video_uid)))
        except (FileNotFoundError, ValueError):
            return None

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

    def _uid_of(self, name: str, record_path: str) -> str | None:
        """The uid stored under ``name`` (a stand-in is looked up in its record)."""
        if not _is_stand_in(name):
            return name
        try:
            return json.loads(self._fs.cat_file(record_path)).get("video_uid")
        except (OSError, ValueError):
            return None  # no record yet (cut short): as if absent

    def load(self) -> PartitionLoaders:
        loaders: dict[str, Callable[[], Any]] = {}
        failed = set()
        errors = posixpath.join(self._root, ERRORS_FOLDER)
        for name in self._list(errors, ".json"):
            path = posixpath.join(errors, f"{name}.json")
            uid = self._uid_of(name, path)
            if uid is not None:
                loaders[uid] = lambda path=path: self._read_failure(path)
                failed.add(uid)
        records = posixpath.join(self._root, RECORDS_FOLDER)
        for name in self._list(self._root, self._suffix):
            uid = self._uid_of(name, posixpath.join(records, f"{name}.json"))
            if uid is not None:
                path = posixpath.join(self._root, f"{name}{self._suffix}")
                loaders[uid] = lambda path=path: self._read(path)
                failed.discard(uid)
        return PartitionLoaders(
            sorted(loaders.items()), failed=failed, records=self.made_by
        )

    def exists_partition(self, video_uid: str) -> bool:
        return self._fs.exists(self.partition_path(video_uid))

    def is_current(self, video_uid: str, fingerprint: str | None) -> bool:
        """Whether the video's partition is there, made as ``fingerprint`` says
        (``None``: however it was made)."""
        if not self.exists_partition(video_uid):
            return False
        return (
            fingerprint is None
            or (self.made_by(video_uid) or {}).get("fingerprint") == fingerprint
        )

    def expect(self, fingerprints: Mapping[str, str | None]) -> None:
        """The videos this run needs and the fingerprint each one's output must
        have (``None``: any output will do); ``exists()`` then checks them all."""
        self._expected = dict(fingerprints)

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

    def _plan(self, data: dict[str, Any]) -> tuple[list[str], int, dict]:
        """The videos to compute, how many are reused, and why others changed."""
        todo, reused, changed = [], 0, {}
        expected = getattr(data, "made_by", None)
        for uid in data:
            want = expected(uid) if expected and self._skip_existing else None
            if self._skip_existing and self.is_current(
                uid, None if want is None else want.get("fingerprint")
            ):
                reused += 1
                continue
            if want is not None and self.exists_partition(uid):
                changed[uid] = differences(self.made_by(uid), want)
            todo.append(uid)
        if changed and getattr(data, "on_changed", "recompute") == "stop":
            uid, lines = next(iter(changed.items()))
            raise DatasetError(
                f"{self._path}: {len(changed)} output(s) were made with other "
                f"settings (executor.on_changed=stop); {uid}: " + "; ".join(lines[:5])
            )
        if hasattr(data, "plan"):
            data.plan(todo)
        return todo, reused, changed

    def _store(self, uid: str, value: Any, record: dict | None) -> bool:
        """Write one video's result (or failure); ``True`` if it succeeded."""
        if not isinstance(value, VideoFailure):
            try:
                self._write(self.partition_path(uid), value)
            except (TypeError, ValueError) as exc:  # not one the format can hold
                value = VideoFailure(uid, "save", f"cannot store the result: {exc}")
        if isinstance(value, VideoFailure):
            self._write(self.error_path(uid), value.to_dict())
            for stale in (self.partition_path(uid), self.record_path(uid)):
                if self._fs.exists(stale):
                    self._fs.rm(stale)  # an output made otherwise is not this one
            return False
        if record is not None or _is_stand_in(partition_name(uid)):
            self._write(self.record_path(uid), {"video_uid": uid, **(record or {})})
        elif self._fs.exists(self.record_path(uid)):
            self._fs.rm(self.record_path(uid))  # it described the old partition
        if self._fs.exists(self.error_path(uid)):
            self._fs.rm(self.error_path(uid))
        return True

    def save(self, data: dict[str, Any]) -> None:
        marker = posixpath.join(self._root, DONE_MARKER)
        if self._fs.exists(marker):
            self._fs.rm(marker)
        todo, reused, changed = self._plan(data)
        written = failed = 0
        record_of = getattr(data, "made_by", None)
        for uid in todo:
            item = data[uid]
            value = item() if callable(item) else item
            if self._store(uid, value, record_of(uid) if record_of else None):
                written += 1
            else:
                failed += 1
        if not failed:
            with atomic_open(self._fs, marker) as handle:
                handle.write(json.dumps({"videos": written + reused}).encode())
        self.counts = {
            "written": written,
            "recomputed": len(changed),
            "reused": reused,
            "failed": failed,
        }
        logger.info(
            "%s: %d written (%d made with other settings before), %d reused, %d failed",
            self._path,
            written,
            len(changed),
            reused,
            failed,
        )

    def _exists(self) -> bool:
        if self._expected is not None:
            return all(self.is_current(u, f) for u, f in self._expected.items())
        return self._fs.exists(posixpath.join(self._root, DONE_MARKER))

    def was_saved(self) -> bool:
        """Whether a save ever started here (some videos may have failed)."""
        return self._fs.isdir(self._root)

    def _describe(self) -> dict[str, Any]:
        return {
            "path": self._path,
            "format": self._format,
            "skip_existing": self._skip_existing,
        }
