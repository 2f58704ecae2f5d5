"""``prefetch``: run an iterator ahead of its consumer in a background thread.

Decoding (PyAV) and preprocessing (numpy, torch) release the GIL, so a thread
that decodes the next frames while the model embeds the current ones keeps the
model fed. Errors raised by the iterator reach the consumer, in order.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield ``items``, computed up to ``depth`` ahead in a daemon thread.

    ``depth`` 0 yields them in the calling thread. Closing the returned
    generator early stops the thread at its next item.
    """
    if depth <= 0:
        yield from items
        return
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def fill() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                buffer.put((item, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            buffer.put((_END, exc))
            return
        buffer.put((_END, None))

    thread = threading.Thread(target=fill, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = buffer.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                buffer.get(timeout=0.05)
            except queue.Empty:
                continue
