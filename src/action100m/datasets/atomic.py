"""Atomic writes through fsspec: a temp file in the target folder, then a rename."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import uuid
from collections.abc import Iterator
from typing import IO

import fsspec

from action100m.core.errors import OutputWriteError

# A temp name adds 14 bytes to the target's; longer targets get a hashed temp
# name, so the usual 255-byte limit on a name never fails a write that fits.
MAX_TMP_STEM_BYTES = 255 - 14
_CAUSES = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file size limit is reached",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "a part of the path is a file, not a folder",
}


def write_error(path: str, exc: OSError) -> OutputWriteError:
    """A clear error for a file the output folder could not take."""
    cause = _CAUSES.get(exc.errno or 0, exc.strerror or str(exc))
    return OutputWriteError(
        exc.errno,
        f"cannot write {path}: {cause}. Nothing was left in its place; fix the "
        "cause and rerun to resume",
    )


@contextlib.contextmanager
def atomic_open(fs: fsspec.AbstractFileSystem, path: str) -> Iterator[IO[bytes]]:
    """Open ``path`` for binary writing so readers never see a partial file.

    On local disks the data goes to ``.<name>.<random>.tmp`` (``<name>`` hashed
    when that would be too long a name) beside the target and
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
    if len(name.encode("utf-8", "surrogateescape")) > MAX_TMP_STEM_BYTES:
        name = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()
    tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        os.makedirs(folder or ".", exist_ok=True)
        with open(tmp, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, OutputWriteError):
            raise write_error(path, exc) from exc
        raise
