"""Tables written atomically: JSON lines, JSON, text, release parquet and shards.

Example YAML::

    release_parquet:
      type: action100m.datasets.ReleaseShardsDataset
      path: data/07_model_output/data
      single_file: data/07_model_output/action100m.parquet
      save_args:
        compression: zstd
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Iterator
from typing import IO, Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from kedro.io import AbstractDataset, DatasetError

from action100m.core.schema import RELEASE_SCHEMA
from action100m.datasets.atomic import atomic_open
from action100m.datasets.stale import Renewable
from action100m.release.shards import ReleaseRows, ReleaseShards, shard_files


class _FileDataset(Renewable, AbstractDataset):
    def __init__(
        self,
        *,
        filepath: str,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._filepath = str(filepath)
        self._fs, self._path = fsspec.core.url_to_fs(
            self._filepath, **(credentials or {}), **(fs_args or {})
        )
        self._load_args = {
            **getattr(self, "DEFAULT_LOAD_ARGS", {}),
            **(load_args or {}),
        }
        self._save_args = {
            **getattr(self, "DEFAULT_SAVE_ARGS", {}),
            **(save_args or {}),
        }
        self.metadata = metadata

    @property
    def location(self) -> str:
        """Where the file is (as configured: a local path or a URL)."""
        return self._filepath

    def _exists(self) -> bool:
        return self._fs.exists(self._path)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "save_args": self._save_args}


class JSONLinesDataset(_FileDataset):
    """A list of JSON objects, one per line. A missing file loads as ``[]``."""

    def load(self) -> list[dict[str, Any]]:
        if not self._fs.exists(self._path):
            return []
        with self._fs.open(self._path, "rb") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    def save(self, data: Iterable[dict[str, Any]]) -> None:
        with atomic_open(self._fs, self._path) as handle:
            for row in data:
                handle.write(json.dumps(row, ensure_ascii=False).encode() + b"\n")


class JSONFileDataset(_FileDataset):
    """One JSON document, written atomically."""

    def load(self) -> Any:
        with self._fs.open(self._path, "rb") as handle:
            return json.loads(handle.read())

    def save(self, data: Any) -> None:
        with atomic_open(self._fs, self._path) as handle:
            handle.write(json.dumps(data, ensure_ascii=False, indent=1).encode())


def write_release_rows(
    handle: IO[bytes],
    rows: Iterator[dict[str, Any]],
    save_args: dict[str, Any],
    max_rows: int | None = None,
    max_bytes: int | None = None,
) -> int:
    """Stream release rows into one parquet file, a row group at a time.

    Stops when ``rows`` ends, or once the file holds ``max_rows`` rows or
    ``max_bytes`` compressed bytes (checked after each row group).

    Args:
        handle: The open binary file.
        rows: Release rows (dicts); only what the file takes is consumed.
        save_args: ``rows_per_group`` and the ``ParquetWriter`` arguments.
        max_rows: Rows after which the file is closed (None: no limit).
        max_bytes: Bytes after which the file is closed (None: no limit).

    Returns:
        How many rows were written.
    """
    args = dict(save_args)
    per_group = int(args.pop("rows_per_group"))
    total = 0
    with pq.ParquetWriter(handle, RELEASE_SCHEMA, **args) as writer:
        while True:
            room = per_group if max_rows is None else min(per_group, max_rows - total)
            group = [row for _, row in zip(range(room), rows, strict=False)]
            if group or total == 0:
                writer.write_table(pa.Table.from_pylist(group, RELEASE_SCHEMA))
            total += len(group)
            full = (max_rows is not None and total >= max_rows) or (
                max_bytes is not None and handle.tell() >= max_bytes
            )
            if len(group) < room or full:
                return total


class ReleaseParquetDataset(_FileDataset):
    """Rows of the release schema, streamed into row groups of ``rows_per_group``.

    ``save`` takes any iterable of release rows (dicts), so a whole corpus never
    has to sit in memory; ``load`` returns a ``pyarrow.Table``.
    """

    DEFAULT_SAVE_ARGS = {"compression": "zstd", "rows_per_group": 64}

    def load(self) -> pa.Table:
        with self._fs.open(self._path, "rb") as handle:
            return pq.read_table(handle, **self._load_args)

    def save(self, data: Iterable[dict[str, Any]]) -> None:
        with atomic_open(self._fs, self._path) as handle:
            write_release_rows(handle, iter(data), self._save_args)


class ReleaseSourceDataset(_FileDataset):
    """A release to read: one parquet file, a folder of shards or a glob.

    ``load`` returns a :class:`~action100m.release.shards.ReleaseShards` that
    reads a row group at a time (a folder: its ``data/*.parquet``, else its
    ``*.parquet``). Read-only.

    Args:
        filepath: A file, folder or glob (local path or fsspec URL).
        credentials: Passed to the fsspec filesystem.
        fs_args: Extra fsspec filesystem arguments.
        metadata: Free-form metadata (ignored by Kedro).
    """

    def load(self) -> ReleaseShards:
        fs, files = shard_files(self._path, self._fs)
        return ReleaseShards(files, fs)

    def save(self, data: Any) -> None:
        raise DatasetError(f"{self._filepath}: a release input is read, never written")

    def _exists(self) -> bool:
        try:
            shard_files(self._path, self._fs)
        except FileNotFoundError:
            return False
        return True


SHARD_INDEX = "_shards.json"
SHARD_NAME = "train-{:05d}.parquet"
_SHARD_ORDINAL = re.compile(r"^train-(\d+)\.parquet$")


class ReleaseShardsDataset(ReleaseSourceDataset):
    """The release as parquet shards in one folder, rewritten only where it changed.

    Shards are ``train-00000.parquet``, ``train-00001.parquet`` ... (the Hugging
    Face Hub layout when the folder is ``<output_dir>/data``): names sort in row
    order and never change. ``_shards.json`` beside them lists each shard's
    videos with the fingerprint of what made each row. A save

    - keeps a shard whose videos are all still exported with the same
      fingerprints (not opened, not touched);
    - rewrites a shard one of whose videos changed or went away (its other
      videos keep their places; a shard left empty is deleted);
    - writes the videos that are in no shard yet into new shards after the last
      one, each closed at ``shard_rows`` rows or ``shard_bytes`` bytes;
    - rewrites everything when the shard limits or ``save_args`` changed;
    - deletes any other parquet file in the folder (left by a cut-short save).

    ``load`` returns a :class:`~action100m.release.shards.ReleaseShards` that
    reads the shards a row group at a time. With ``ReleaseRows.single_file``
    every row is also copied, shard by shard, into the ``single_file`` path; a
    save without it removes that file, so no stale copy stays.

    Args:
        path: The shards' folder (local path or fsspec URL).
        single_file: Where the one-file copy goes.
        save_args: ``rows_per_group`` and ``ParquetWriter`` arguments.
        credentials: Passed to the fsspec filesystem.
        fs_args: Extra fsspec filesystem arguments.
        metadata: Free-form metadata (ignored by Kedro).
    """

    DEFAULT_SAVE_ARGS = {"compression": "zstd", "rows_per_group": 64}

    def __init__(
        self,
        *,
        path: str,
        single_file: str | None = None,
        save_args: dict[str, Any] | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            filepath=path,
            save_args=save_args,
            credentials=credentials,
            fs_args=fs_args,
            metadata=metadata,
        )
        self._single = (
            None if single_file is None else fsspec.core.strip_protocol(single_file)
        )

    def _index_path(self) -> str:
        return posixpath.join(self._path, SHARD_INDEX)

    def index(self) -> dict[str, Any]:
        """The shard index (empty when there is none or it is unreadable)."""
        try:
            return json.loads(self._fs.cat_file(self._index_path()))
        except (OSError, ValueError):
            return {}

    def _exists(self) -> bool:
        return self._fs.exists(self._index_path())

    def _write(
        self,
        name: str,
        uids: Iterator[str],
        data: ReleaseRows,
        fingerprints: dict[str, str | None],
        limits: bool,
    ) -> dict[str, Any]:
        """One shard of the videos taken from ``uids``; its index entry."""
        taken: list[str] = []

        def rows() -> Iterator[dict[str, Any]]:
            for uid in uids:
                taken.append(uid)
                yield data.row(uid)

        path = posixpath.join(self._path, name)
        with atomic_open(self._fs, path) as handle:
            write_release_rows(
                handle,
                rows(),
                self._save_args,
                data.shard_rows if limits else None,
                data.shard_bytes if limits else None,
            )
        return {
            "file": name,
            "rows": len(taken),
            "bytes": self._fs.size(path),
            "videos": [[uid, fingerprints[uid]] for uid in taken],
        }

    def _unchanged(self, shard: dict[str, Any], members: list[list]) -> bool:
        path = posixpath.join(self._path, shard["file"])
        return (
            members == shard["videos"]
            and all(fp is not None for _, fp in members)
            and self._fs.exists(path)
            and self._fs.size(path) == shard["bytes"]
        )

    def save(self, data: ReleaseRows) -> None:
        layout = {
            "shard_rows": data.shard_rows,
            "shard_bytes": data.shard_bytes,
            **self._save_args,
        }
        old = self.index()
        previous = old.get("shards", []) if old.get("layout") == layout else []
        current = {uid: fp for uid, fp in data.videos}
        placed: set[str] = set()
        shards, written, reused = [], 0, 0
        for shard in previous:
            members = [
                [uid, current[uid]]
                for uid, _ in shard["videos"]
                if uid in current and uid not in placed
            ]
            placed.update(uid for uid, _ in members)
            if not members:
                continue
            if self._unchanged(shard, members):
                shards.append(shard)
                reused += 1
            else:
                uids = iter([uid for uid, _ in members])
                shards.append(
                    self._write(shard["file"], uids, data, current, limits=False)
                )
                written += 1
        ordinals = [
            int(m.group(1))
            for m in (_SHARD_ORDINAL.match(s["file"]) for s in old.get("shards", []))
            if m
        ]
        ordinal = max(ordinals, default=-1) + 1
        new = [uid for uid, _ in data.videos if uid not in placed]
        pending, left = iter(new), len(new)
        while left:
            name = SHARD_NAME.format(ordinal)
            shard = self._write(name, pending, data, current, limits=True)
            shards.append(shard)
            written += 1
            ordinal += 1
            left -= shard["rows"]
        keep = {s["file"] for s in shards}
        removed = 0
        if self._fs.isdir(self._path):
            for path in self._fs.glob(posixpath.join(self._path, "*.parquet")):
                if posixpath.basename(path) not in keep:
                    self._fs.rm(path)
                    removed += 1
        with atomic_open(self._fs, self._index_path()) as handle:
            index = {"layout": layout, "shards": shards}
            handle.write(json.dumps(index, ensure_ascii=False).encode())
        self._save_single(data.single_file)
        self.counts = {"written": written, "reused": reused, "removed": removed}

    def _save_single(self, wanted: bool) -> None:
        if self._single is None:
            return
        if not wanted:
            if self._fs.exists(self._single):
                self._fs.rm(self._single)
            return
        rows = self.load().rows()
        with atomic_open(self._fs, self._single) as handle:
            write_release_rows(handle, rows, self._save_args)


class TextFileDataset(_FileDataset):
    """One UTF-8 text file (e.g. a Markdown card), written atomically."""

    def load(self) -> str:
        with self._fs.open(self._path, "rb") as handle:
            return handle.read().decode("utf-8")

    def save(self, data: str) -> None:
        with atomic_open(self._fs, self._path) as handle:
            handle.write(data.encode("utf-8"))
