"""The captioner interface of Stage 2."""

from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from action100m.models.base import StageModel
from action100m.models.work import WorkCounter


@dataclass(frozen=True)
class CaptionRequest:
    """One prompt about one video clip (several frames) or one image.

    Attributes:
        frames: uint8 ``(H, W, 3)`` frames; one for an image.
        prompt: The user prompt.
        kind: ``video`` (frames as a clip) or ``image`` (the first frame).
        clip_id: Requests with the same ``clip_id`` carry the same frames, so a
            backend may encode them and prefill the video once for all of them.
    """

    frames: list[np.ndarray]
    prompt: str
    kind: Literal["video", "image"] = "video"
    clip_id: str | None = None


@dataclass(frozen=True)
class CaptionFailure:
    """A request that got no usable text, and why."""

    reason: str


class Captioner(StageModel, ABC):
    """Turns caption requests into texts; ``setup()`` loads weights once.

    A batching backend (``streams`` False) is called with batches; a streaming
    one (a served model) takes each request by ``submit`` as soon as its frames
    are decoded and keeps its own bound on requests in flight.
    ``work`` counts the calls, frames, prompt tokens and generated tokens spent.
    """

    streams = False

    def __init__(self) -> None:
        super().__init__()
        self.work = WorkCounter()

    def submit(self, request: CaptionRequest) -> Future:
        """One request; here run at once, in the caller's thread."""
        future: Future = Future()
        future.set_result(self([request])[0])
        return future

    def submit_many(self, batch: list[CaptionRequest]) -> list[Future]:
        """Several requests at once (a clip's questions together); in order."""
        return [self.submit(request) for request in batch]

    @abstractmethod
    def __call__(self, batch: list[CaptionRequest]) -> list[str | CaptionFailure]:
        """One text (or failure) per request, in order."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Model id, resolved revision, backend and generation settings."""
