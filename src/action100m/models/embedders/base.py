"""The embedder interface of Stage 1 segmentation."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from action100m.models.base import StageModel
from action100m.models.work import WorkCounter


class Embedder(StageModel, ABC):
    """Turns windows of sampled frames into one vector per time step.

    A window holds ``window`` consecutive sampled frames and windows start every
    ``window_stride`` frames; a per-frame embedder uses ``window = 1``. ``setup()``
    loads weights once; ``__call__`` embeds a batch of windows and adds to
    ``work`` (calls, frames, input tokens).
    """

    window: int = 1
    window_stride: int = 1
    #: Decode frames with this shorter side (None: native size).
    short_side: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.work = WorkCounter()

    @abstractmethod
    def preprocess(self, frames: np.ndarray) -> Any:
        """Per-frame work on decoded uint8 ``(T, H, W, 3)`` frames -> ``T`` items."""

    @abstractmethod
    def stack(self, windows: list[list[Any]]) -> Any:
        """Stack preprocessed frames into a batch of windows."""

    @abstractmethod
    def __call__(self, batch: Any) -> np.ndarray:
        """Embed a batch of windows -> float32 ``(B, steps, D)``."""

    def describe(self) -> dict[str, Any]:
        """Identity of the model for tracking (id, revision, device, dtype)."""
        return {"backend": type(self).__name__}
