"""``VJEPA2Embedder``: V-JEPA 2 video features (transformers ``VJEPA2Model``).

Windows of sampled frames go through the encoder; its tokens are averaged over
space, giving one vector per temporal token (``tubelet_size`` frames each).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from action100m.models.base import resolve_device, resolve_dtype
from action100m.models.embedders.base import Embedder


class VJEPA2Embedder(Embedder):
    """Sliding-window V-JEPA 2 embeddings.

    Args:
        model_id: Hub id or local folder (``from_pretrained``).
        revision: Hub revision (branch, tag or commit).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1`` ...
        dtype: ``auto`` (bf16 on GPU, fp32 on CPU) or a torch dtype name.
        window: Sampled frames per window (paper: 64).
        window_stride: Frames between window starts (paper: 8).
    """

    loaded = ("model", "processor")

    def __init__(
        self,
        model_id: str,
        revision: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        window: int = 64,
        window_stride: int = 8,
    ) -> None:
        super().__init__()
        self.model_id = model_id
        self.revision = revision
        self.device = device
        self.dtype = dtype
        self.window = window
        self.window_stride = window_stride
        self.processor = None
        self.model = None

    def setup(self) -> None:
        from transformers import AutoVideoProcessor, VJEPA2Model

        self.processor = AutoVideoProcessor.from_pretrained(
            self.model_id, revision=self.revision
        )
        size = getattr(self.processor, "size", None) or {}
        # Frames are decoded at the processor's input size, known from here on.
        self.short_side = int(size.get("shortest_edge") or 256)

        self.device = resolve_device(self.device)
        torch_dtype = resolve_dtype(self.dtype, self.device)
        # SDPA keeps attention memory linear in tokens (18,432 per window).
        self.model = VJEPA2Model.from_pretrained(
            self.model_id,
            revision=self.revision,
            dtype=torch_dtype,
            attn_implementation="sdpa",
        )
        self.model.to(self.device).eval()
        self._torch_dtype = torch_dtype

    def preprocess(self, frames: np.ndarray) -> list[Any]:
        processed = self.processor(videos=[np.asarray(frames)], return_tensors="pt")
        return list(processed["pixel_values_videos"][0])

    def stack(self, windows: list[list[Any]]) -> Any:
        import torch

        return torch.stack([torch.stack(w) for w in windows])

    def __call__(self, batch: Any) -> np.ndarray:
        import torch

        config = self.model.config
        steps = max(1, batch.shape[1] // config.tubelet_size)
        with torch.inference_mode():
            pixels = batch.to(self.device, dtype=self._torch_dtype)
            tokens = self.model(pixel_values_videos=pixels, skip_predictor=True)
            hidden = tokens.last_hidden_state
            pooled = hidden.reshape(hidden.shape[0], steps, -1, hidden.shape[-1])
            pooled = pooled.float().mean(dim=2)
        self.work.add(
            calls=1,
            frames=batch.shape[0] * batch.shape[1],
            prompt_tokens=hidden.shape[0] * hidden.shape[1],
        )
        return pooled.cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "vjepa2",
            "model_id": self.model_id,
            "revision": self.revision,
            "device": str(self.device),
            "dtype": str(self.dtype),
            "window": self.window,
            "window_stride": self.window_stride,
        }
