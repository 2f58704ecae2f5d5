"""On-disk cache of LLM answers keyed by a hash of the request as first asked."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import fsspec

from action100m.datasets.atomic import atomic_open


def request_key(
    model: str, messages: list[dict[str, Any]], params: dict[str, Any]
) -> str:
    """SHA-256 of the canonical JSON of a request."""
    payload = json.dumps(
        {"model": model, "messages": messages, "params": params},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class ResponseCache:
    """One JSON file per request, written atomically.

    The file is named by :func:`request_key` of the request as first asked and
    holds the valid answer, whichever attempt gave it: ``text``,
    ``finish_reason``, ``usage``, ``attempts`` and ``request`` (that attempt's
    parameters). Files of the earlier format hold one attempt's answer (valid
    or not) under that attempt's request, without ``attempts``; they are still
    read (see :meth:`~action100m.models.llm.clients.ChatClient.complete`).

    Args:
        folder: Local path or fsspec URL; None disables the cache.
    """

    def __init__(self, folder: str | None) -> None:
        self.folder = folder
        self.fs = None
        if folder:
            self.fs, self.root = fsspec.core.url_to_fs(folder)

    def _path(self, key: str) -> str:
        return os.path.join(self.root, key[:2], f"{key}.json")

    def get(self, key: str) -> dict[str, Any] | None:
        if self.fs is None:
            return None
        path = self._path(key)
        try:
            with self.fs.open(path, "rb") as handle:
                value = json.loads(handle.read())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return value

    def put(self, key: str, value: dict[str, Any]) -> None:
        if self.fs is None:
            return
        with atomic_open(self.fs, self._path(key)) as handle:
            handle.write(json.dumps(value, ensure_ascii=False).encode())
