"""Atomic writes through fsspec: a temp file in the target folder, then a rename."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import IO

import fsspec


@contextlib.contextmanager
def atomic_open(fs: fsspec.AbstractFileSystem, path: str) -> Iterator[IO[bytes]]:
    """Open ``path`` for binary writing so readers never see a partial file.

    On local disks the data goes to ``.<name>.<random>.tmp`` beside the target and
    is renamed over it once complete (a failure removes the temp file). Object
    stores publish an object only when its upload completes, so they are written
    directly.
    """
    local = "file" in (
        fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    )
    if not local:
        with fs.open(path, "wb") as handle:
            yield handle
        return
    folder, name = os.path.split(path)
    os.makedirs(folder or ".", exist_ok=True)
    tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
