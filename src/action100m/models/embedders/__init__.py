"""Stage 1 embedders behind one interface; the backend is a config line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from action100m.models.embedders.base import Embedder
from action100m.models.embedders.color_histogram import ColorHistogramEmbedder
from action100m.models.embedders.vjepa2 import VJEPA2Embedder
from action100m.models.embedders.windows import embed_frame_stream, window_starts

if TYPE_CHECKING:
    from action100m.core.params import EmbedderParams

__all__ = [
    "ColorHistogramEmbedder",
    "Embedder",
    "VJEPA2Embedder",
    "embed_frame_stream",
    "make_embedder",
    "window_starts",
]


EMBEDDERS: dict[str, type[Embedder]] = {
    "color_histogram": ColorHistogramEmbedder,
    "vjepa2": VJEPA2Embedder,
}


def make_embedder(params: EmbedderParams) -> Embedder:
    """The configured embedder, built from its parameters (weights load later,
    in ``setup()``)."""
    if params.backend == "vjepa2" and not params.model_id:
        raise ValueError("segmentation.embedder.model_id is required for vjepa2")
    return EMBEDDERS[params.backend].from_params(params)
