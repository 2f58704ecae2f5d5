"""``JSONLinesDataset`` and ``ReleaseParquetDataset``: small tables, written atomically.

Example YAML::

    release_parquet:
      type: action100m.datasets.ReleaseParquetDataset
      filepath: data/07_model_output/action100m.parquet
      save_args:
        compression: zstd
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from kedro.io import AbstractDataset

from action100m.core.schema import RELEASE_SCHEMA
from action100m.datasets.atomic import atomic_open
from action100m.datasets.stale import Renewable


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
        args = dict(self._save_args)
        rows_per_group = int(args.pop("rows_per_group"))
        with (
            atomic_open(self._fs, self._path) as handle,
            pq.ParquetWriter(handle, RELEASE_SCHEMA, **args) as writer,
        ):
            rows: list[dict[str, Any]] = []
            total = 0
            for row in data:
                rows.append(row)
                total += 1
                if len(rows) == rows_per_group:
                    writer.write_table(pa.Table.from_pylist(rows, RELEASE_SCHEMA))
                    rows = []
            if rows or total == 0:
                writer.write_table(pa.Table.from_pylist(rows, RELEASE_SCHEMA))


class TextFileDataset(_FileDataset):
    """One UTF-8 text file (e.g. a Markdown card), written atomically."""

    def load(self) -> str:
        with self._fs.open(self._path, "rb") as handle:
            return handle.read().decode("utf-8")

    def save(self, data: str) -> None:
        with atomic_open(self._fs, self._path) as handle:
            handle.write(data.encode("utf-8"))
