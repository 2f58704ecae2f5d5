"""Per-video failures: recorded on the data, counted, never raised through a run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

logger = logging.getLogger(__name__)
T = TypeVar("T")


class VideoError(Exception):
    """A specific, expected problem with one input video or its sidecar."""


class OutputWriteError(OSError):
    """The output folder cannot take a file (full, read-only, not a folder ...).

    Not a problem of one video: it stops the run, which a rerun resumes once the
    cause is fixed.
    """


@dataclass(frozen=True)
class VideoFailure:
    """Why one video has no output from one stage.

    Attributes:
        video_uid: The video's id.
        stage: The pipeline stage that failed (``ingest``, ``segmentation``, ...).
        reason: A specific, readable cause.
        source: The input file, when known.
        work: What the video's models did before it failed (role -> counts), on
            its way to the run's totals; never saved.
    """

    video_uid: str
    stage: str
    reason: str
    source: str | None = None
    work: dict[str, dict[str, int]] | None = field(
        default=None, compare=False, repr=False
    )

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record.pop("work")
        return record

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoFailure:
        return cls(
            **{k: data.get(k) for k in ("video_uid", "stage", "reason", "source")}
        )


def record_failure(
    stage: str, video_uid: str, work: Callable[[], T], source: str | None = None
) -> T | VideoFailure:
    """Run one video's work; turn any exception into a :class:`VideoFailure`.

    Args:
        stage: Stage name recorded with the failure.
        video_uid: The video being processed.
        work: The per-video computation.
        source: The input file, for the record.

    Returns:
        The work's result, or the failure that replaced it.
    """
    try:
        return work()
    except Exception as exc:  # noqa: BLE001 - one video must not stop the run
        return failure_of(stage, video_uid, exc, source)


def failure_of(
    stage: str, video_uid: str, exc: Exception, source: str | None = None
) -> VideoFailure:
    """The :class:`VideoFailure` that ``exc`` makes of one video.

    Raises:
        OutputWriteError: ``exc`` itself: not the video's problem, the run stops.
    """
    if isinstance(exc, OutputWriteError):
        raise exc
    if isinstance(exc, VideoError):
        reason = str(exc)
    else:
        logger.debug("%s failed for %s", stage, video_uid, exc_info=exc)
        reason = f"{type(exc).__name__}: {exc}"
    logger.warning("%s: video %s failed: %s", stage, video_uid, reason)
    return VideoFailure(video_uid, stage, reason, source)
