"""Release shards: where a release's parquet files are, and reading them in batches.

A release is one parquet file or many (the Hugging Face Hub layout: parquet
shards under ``data/``, rows in the order of the sorted file names). Every reader
of release rows goes through :func:`open_release`, which takes

- a file (``action100m.parquet``, a downloaded ``data/part-00000.parquet``);
- a folder: its ``data/*.parquet`` if there are any, else its ``*.parquet``
  (so a run's output folder and its ``data/`` folder both work);
- a glob (``out/data/train-0000*.parquet``);
- or an in-memory ``pyarrow.Table``,

and reads a row group at a time, so what a reader holds is what its result
needs, not the release.
"""

from __future__ import annotations

import contextlib
import glob as globlib
import os
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

# The Hugging Face Hub layout of a run's release: <output_dir>/data/*.parquet.
SHARDS_FOLDER = "data"
SHARD_GLOB = f"{SHARDS_FOLDER}/*.parquet"
BATCH_ROWS = 64


class ReleaseNotFound(FileNotFoundError):
    """A path, folder or glob that names no parquet file."""


def shard_files(
    source: str | os.PathLike, fs: fsspec.AbstractFileSystem | None = None
) -> tuple[fsspec.AbstractFileSystem, list[str]]:
    """The parquet files a path, folder or glob names, in row order.

    Args:
        source: A parquet file, a folder (its ``data/*.parquet``, else its
            ``*.parquet``) or a glob; a local path or an fsspec URL.
        fs: The file system (inferred from ``source`` when omitted).

    Returns:
        The file system and the files, sorted by name (hidden ``.``/``_``
        files left out).

    Raises:
        ReleaseNotFound: When nothing matches.
    """
    text = os.fspath(source)
    if fs is None:
        fs, path = fsspec.core.url_to_fs(text)
    else:
        path = fsspec.core.strip_protocol(text)
    if globlib.has_magic(path):
        found = fs.glob(path)
    elif fs.isdir(path):
        found = fs.glob(posixpath.join(path, SHARD_GLOB)) or fs.glob(
            posixpath.join(path, "*.parquet")
        )
    elif fs.exists(path):
        return fs, [path]
    else:
        raise ReleaseNotFound(f"{text}: no such file or folder")
    files = sorted(f for f in found if not posixpath.basename(f).startswith((".", "_")))
    if not files:
        raise ReleaseNotFound(f"{text}: no parquet files (looked for {SHARD_GLOB})")
    return fs, files


@dataclass(frozen=True)
class RowLocation:
    """Where one video's row is: file, row group and row within it."""

    file: int
    row_group: int
    row: int


class ReleaseShards:
    """A release's parquet files (or an in-memory table), read a batch at a time.

    Nothing is read when it is made; each method streams the row groups it
    needs. Rows come in file order, then row order within each file.
    """

    def __init__(
        self,
        files: list[str] | None = None,
        fs: fsspec.AbstractFileSystem | None = None,
        table: pa.Table | None = None,
    ) -> None:
        self.files = list(files or [])
        self.fs = fs or fsspec.filesystem("file")
        self._table = table
        self._cached: tuple[RowLocation, list[dict[str, Any]]] | None = None

    def __repr__(self) -> str:
        what = "a table" if self._table is not None else f"{len(self.files)} file(s)"
        return f"ReleaseShards({what})"

    @contextlib.contextmanager
    def _open(self, file: str) -> Iterator[pq.ParquetFile]:
        with self.fs.open(file, "rb") as handle:
            yield pq.ParquetFile(handle)

    def parts(self) -> Iterator[tuple[str, pq.ParquetFile | pa.Table]]:
        """Each file's name and an open :class:`pyarrow.parquet.ParquetFile`
        (or ``("<table>", table)`` for an in-memory table)."""
        if self._table is not None:
            yield "<table>", self._table
            return
        for file in self.files:
            with self._open(file) as part:
                yield file, part

    def schemas(self) -> Iterator[tuple[str, pa.Schema]]:
        """Each file's name and its schema (from the footer only)."""
        for name, part in self.parts():
            yield name, part.schema if isinstance(part, pa.Table) else part.schema_arrow

    def batches(
        self, columns: list[str] | None = None, batch_rows: int = BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        """Record batches of at most ``batch_rows`` rows, in row order."""
        for _, part in self.parts():
            if isinstance(part, pa.Table):
                table = part.select(columns) if columns else part
                yield from table.to_batches(max_chunksize=batch_rows)
            else:
                yield from part.iter_batches(batch_size=batch_rows, columns=columns)

    def rows(
        self, columns: list[str] | None = None, batch_rows: int = BATCH_ROWS
    ) -> Iterator[dict[str, Any]]:
        """The rows as dicts, converting ``batch_rows`` at a time."""
        for batch in self.batches(columns, batch_rows):
            yield from batch.to_pylist()

    def video_uids(self) -> list[str]:
        """Every row's ``video_uid``, in row order (that column only is read)."""
        uids: list[str] = []
        for batch in self.batches(["video_uid"], batch_rows=65536):
            uids += batch.column(0).to_pylist()
        return uids

    @property
    def num_rows(self) -> int:
        """Rows in all files (from the footers)."""
        return sum(
            part.num_rows if isinstance(part, pa.Table) else part.metadata.num_rows
            for _, part in self.parts()
        )

    def find(self, video_uid: str) -> dict[str, Any] | None:
        """The first row of ``video_uid`` (None if absent), read with a filter:
        a row group whose ``video_uid`` statistics exclude it is skipped, and of
        a row group that may hold it, ``video_uid`` is read first, then the row."""
        if self._table is not None:
            found = self._table.filter(ds.field("video_uid") == video_uid)
            return found.slice(0, 1).to_pylist()[0] if found.num_rows else None
        for _, part in self.parts():
            for group in range(part.num_row_groups):
                if not _may_hold(part.metadata.row_group(group), video_uid):
                    continue
                uids = part.read_row_group(group, columns=["video_uid"]).column(0)
                uids = uids.to_pylist()
                if video_uid in uids:
                    table = part.read_row_group(group)
                    return table.slice(uids.index(video_uid), 1).to_pylist()[0]
        return None

    def locate(self) -> dict[str, RowLocation]:
        """``video_uid -> RowLocation`` of every row (only ``video_uid`` is read;
        a uid seen twice keeps its first row)."""
        found: dict[str, RowLocation] = {}
        for index, (_, part) in enumerate(self.parts()):
            groups = (
                [part]
                if isinstance(part, pa.Table)
                else (
                    part.read_row_group(g, columns=["video_uid"])
                    for g in range(part.num_row_groups)
                )
            )
            for group, table in enumerate(groups):
                for row, uid in enumerate(table.column("video_uid").to_pylist()):
                    found.setdefault(uid, RowLocation(index, group, row))
        return found

    def row_at(self, where: RowLocation) -> dict[str, Any]:
        """The row at ``where`` (its row group is kept until another is asked
        for, so reading rows in order reads each row group once)."""
        key = RowLocation(where.file, where.row_group, 0)
        if self._cached is None or self._cached[0] != key:
            if self._table is not None:
                rows = self._table.to_pylist()
            else:
                with self._open(self.files[where.file]) as part:
                    rows = part.read_row_group(where.row_group).to_pylist()
            self._cached = (key, rows)
        return self._cached[1][where.row]

    def to_table(self, columns: list[str] | None = None) -> pa.Table:
        """Every row at once (small releases and tests only)."""
        if self._table is not None:
            return self._table.select(columns) if columns else self._table
        tables = []
        for _, part in self.parts():
            tables.append(part.read(columns=columns))
        return pa.concat_tables(tables) if tables else pa.table({})


def _may_hold(group: pq.RowGroupMetaData, video_uid: str) -> bool:
    """Whether a row group's ``video_uid`` statistics allow the uid (True
    without statistics)."""
    for index in range(group.num_columns):
        column = group.column(index)
        if column.path_in_schema == "video_uid":
            stats = column.statistics
            if stats is None or not stats.has_min_max:
                return True
            return stats.min <= video_uid <= stats.max
    return True


ReleaseSource = str | os.PathLike | pa.Table | ReleaseShards


def open_release(
    source: ReleaseSource, fs: fsspec.AbstractFileSystem | None = None
) -> ReleaseShards:
    """A :class:`ReleaseShards` for a file, folder, glob, table or handle.

    Raises:
        ReleaseNotFound: When a path names no parquet file.
    """
    if isinstance(source, ReleaseShards):
        return source
    if isinstance(source, pa.Table):
        return ReleaseShards(table=source)
    fs, files = shard_files(source, fs)
    return ReleaseShards(files, fs)


def read_release(source: ReleaseSource, columns: list[str] | None = None) -> pa.Table:
    """The whole release as one table (for small releases and tests)."""
    return open_release(source).to_table(columns)


def release_rows(source: ReleaseSource) -> Iterator[dict[str, Any]]:
    """The rows of a release, one at a time (see :meth:`ReleaseShards.rows`)."""
    return open_release(source).rows()


@dataclass
class ReleaseRows:
    """What the export hands the shard writer: the videos in row order.

    Args:
        videos: ``(video_uid, fingerprint)`` in row order; a fingerprint is what
            made the video's row (None: unknown, always rewritten).
        row: The release row of a video (called only for shards that are written).
        shard_rows: Rows after which a shard is closed.
        shard_bytes: Compressed bytes after which a shard is closed.
        single_file: Also write every row into one file.
    """

    videos: list[tuple[str, str | None]]
    row: Callable[[str], dict[str, Any]]
    shard_rows: int
    shard_bytes: int
    single_file: bool = False
