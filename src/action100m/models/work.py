"""Work counters: what each model call did, the drivers of its cost.

Every model wrapper (embedder, captioner, chat client) holds a
:class:`WorkCounter` and adds to it per call: ``calls``, ``frames`` (decoded
frames it consumed), ``prompt_tokens`` (vision and text) and
``generated_tokens``; a generating model also counts its decoding work:
``decode_steps`` (decoder forward calls that make one token per row),
``slot_steps`` (rows times decoding steps, counted while requests wait: a static
batch counts every row of every step, finished rows included), ``busy_tokens``
(tokens those steps made), ``drain_steps`` (steps with nothing left to admit),
``prefill_tokens`` and ``vision_frames``. ``slot_occupancy`` is
``busy_tokens / slot_steps``: the share of paid row-steps that made a token.
Stage workers hand each video's counts back with its result, or with its failure
(so Ray actors report too), and the driver sums them here; ``tracking.py`` logs
the totals to MLflow as ``work.<role>.<counter>`` and
``work.<role>.<counter>_per_video_hour``.

Stage 3 runs several videos on one event loop with one chat client: each video's
task sets its own counter in :data:`VIDEO_WORK` (:func:`counting_video`), and the
client adds every answered request to the counter of the task that sent it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, replace
from typing import Any

from action100m.core.errors import VideoFailure

COUNTERS = (
    "calls",
    "frames",
    "prompt_tokens",
    "generated_tokens",
    "decode_steps",
    "slot_steps",
    "busy_tokens",
    "drain_steps",
    "prefill_tokens",
    "vision_frames",
)
ROLES = ("embedder", "plm", "llama", "llm")
# Videos in flight add to one model's counter from several threads, and each
# takes its share: adding and taking are atomic (one lock for every counter
# keeps them picklable).
_LOCK = threading.Lock()


@dataclass
class WorkCounter:
    """Running totals of one model's work."""

    calls: int = 0
    frames: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    decode_steps: int = 0
    slot_steps: int = 0
    busy_tokens: int = 0
    drain_steps: int = 0
    prefill_tokens: int = 0
    vision_frames: int = 0

    def add(self, **counts: int) -> None:
        """Add to the named counters (``calls=1, prompt_tokens=812``)."""
        with _LOCK:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + int(value))

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def add_usage(self, usage: dict[str, int]) -> None:
        """One call of a chat endpoint, from its OpenAI-style ``usage``."""
        self.add(
            calls=1,
            prompt_tokens=usage.get("prompt_tokens") or 0,
            generated_tokens=usage.get("completion_tokens") or 0,
        )

    def take(self) -> dict[str, int]:
        """The counts so far, then zero (one video's share, per video; with
        videos in flight the shares may mix, the totals are exact)."""
        with _LOCK:
            counts = self.as_dict()
            for name in counts:
                setattr(self, name, 0)
        return counts


class RunWork:
    """The driver's totals per role, and the seconds of video behind them."""

    def __init__(self) -> None:
        self.totals: dict[str, WorkCounter] = {}
        self.video_s: dict[str, float] = {}

    def reset(self) -> None:
        self.__init__()

    def record(self, role: str, counts: dict[str, int], video_s: float = 0.0) -> None:
        """Add one video's counts of ``role``."""
        self.totals.setdefault(role, WorkCounter()).add(**counts)
        self.video_s[role] = self.video_s.get(role, 0.0) + float(video_s)

    def metrics(self, video_hours: float | None = None) -> dict[str, float]:
        """``work.<role>.<counter>`` and, where video time is known, per video-hour.

        Args:
            video_hours: The run's video hours, for roles that recorded none.
        """
        found: dict[str, float] = {}
        for role, counter in self.totals.items():
            hours = self.video_s.get(role, 0.0) / 3600 or video_hours
            counts = counter.as_dict()
            for name, value in counts.items():
                found[f"work.{role}.{name}"] = float(value)
                if hours:
                    found[f"work.{role}.{name}_per_video_hour"] = value / hours
            if counts["slot_steps"]:
                found[f"work.{role}.slot_occupancy"] = slot_occupancy(counts)
        return found


def slot_occupancy(counts: dict[str, int]) -> float:
    """Tokens made per paid row-step while requests waited (0 when none was paid)."""
    steps = counts.get("slot_steps", 0)
    return counts.get("busy_tokens", 0) / steps if steps else 0.0


#: The totals of the current ``kedro run`` in this (driver) process.
RUN_WORK = RunWork()

#: The counter of the video the running asyncio task (and the tasks and
#: threads it starts) works on; None outside a video.
VIDEO_WORK: ContextVar[WorkCounter | None] = ContextVar("video_work", default=None)


@contextmanager
def counting_video() -> Iterator[WorkCounter]:
    """A new counter in :data:`VIDEO_WORK` for the current context."""
    counter = WorkCounter()
    token = VIDEO_WORK.set(counter)
    try:
        yield counter
    finally:
        VIDEO_WORK.reset(token)


def collect_work(result: Any, video_s: float) -> Any:
    """Move the ``work`` (role -> counts) of a stage result, or of a video's
    failure, into :data:`RUN_WORK`; the result comes back without it."""
    work = None
    if isinstance(result, dict) and isinstance(result.get("work"), dict):
        work = result.pop("work")
    elif isinstance(result, VideoFailure) and result.work:
        work, result = result.work, replace(result, work=None)
    for role, counts in (work or {}).items():
        RUN_WORK.record(role, counts, video_s)
    return result


def collecting_work(
    results: dict[str, Callable[[], Any]], video_manifest: list[dict[str, Any]]
) -> dict[str, Callable[[], Any]]:
    """The same lazy results, each handing its ``work`` to :data:`RUN_WORK`.

    The mapping is changed in place, so that it keeps its type (the scheduler's
    :class:`~action100m.runtime.executor.VideoWork`, which the save asks what to run).
    A video missing from ``video_manifest`` (or without a duration) adds no video
    time; the run's video hours then stand in for its role.
    """
    durations = {
        v["video_uid"]: float(v.get("duration") or 0.0) for v in video_manifest
    }
    for uid, run in list(results.items()):
        results[uid] = lambda uid=uid, run=run: collect_work(
            run(), durations.get(uid, 0.0)
        )
    return results
