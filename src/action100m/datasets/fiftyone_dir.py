"""``FiftyOneDatasetDir``: a FiftyOne dataset directory of video samples.

Saving takes an iterable of samples (see :mod:`action100m.release.fiftyone_format`) and
streams them into ``samples.json``; loading returns them as a list.

Example YAML::

    fiftyone_dataset:
      type: action100m.datasets.FiftyOneDatasetDir
      path: data/07_model_output/fiftyone
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable
from typing import Any

import fsspec
from kedro.io import AbstractDataset

from action100m.datasets.atomic import atomic_open
from action100m.datasets.stale import Renewable
from action100m.release.fiftyone_format import dataset_metadata


class FiftyOneDatasetDir(Renewable, AbstractDataset[Iterable[dict], list[dict]]):
    """``metadata.json`` + ``samples.json`` in FiftyOne's ``FiftyOneDataset`` layout."""

    def __init__(self, *, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = str(path)
        self._fs, self._root = fsspec.core.url_to_fs(self._path)
        self.metadata = metadata

    def _file(self, name: str) -> str:
        return posixpath.join(self._root.rstrip("/"), name)

    def load(self) -> list[dict[str, Any]]:
        with self._fs.open(self._file("samples.json"), "rb") as handle:
            return json.load(handle)["samples"]

    def save(self, data: Iterable[dict[str, Any]]) -> None:
        """Stream the samples into ``samples.json``, then write ``metadata.json``."""
        count = 0
        with atomic_open(self._fs, self._file("samples.json")) as handle:
            handle.write(b'{"samples": [')
            for sample in data:
                handle.write(b",\n" if count else b"\n")
                handle.write(json.dumps(sample, ensure_ascii=False).encode())
                count += 1
            handle.write(b"\n]}\n")
        with atomic_open(self._fs, self._file("metadata.json")) as handle:
            handle.write(json.dumps(dataset_metadata(), indent=1).encode())

    def _exists(self) -> bool:
        return self._fs.exists(self._file("samples.json"))

    def _describe(self) -> dict[str, Any]:
        return {"path": self._path}
