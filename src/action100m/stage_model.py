"""The base of every model behind a stage: ``setup()`` once, then ``__call__``."""

from __future__ import annotations


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str, device: str):
    """``auto`` -> bfloat16 on GPU, float32 on CPU."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


class StageModel:
    """Separates loading weights (``setup``, once per worker) from calls."""

    def __init__(self) -> None:
        self._ready = False

    def ensure_setup(self) -> None:
        """Call :meth:`setup` once."""
        if not self._ready:
            self.setup()
            self._ready = True

    def setup(self) -> None:
        """Load weights or open clients; called once before the first call."""
