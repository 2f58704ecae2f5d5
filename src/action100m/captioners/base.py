"""The captioner interface of Stage 2."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from action100m.stage_model import StageModel
from action100m.work import WorkCounter


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

    ``work`` counts the calls, frames, prompt tokens and generated tokens spent.
    """

    def __init__(self) -> None:
        super().__init__()
        self.work = WorkCounter()

    @abstractmethod
    def __call__(self, batch: list[CaptionRequest]) -> list[str | CaptionFailure]:
        """One text (or failure) per request, in order."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Model id, resolved revision, backend and generation settings."""
