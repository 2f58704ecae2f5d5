"""Stage 2 captioners behind one interface; the backend is a config line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from action100m.models.captioners.base import Captioner, CaptionFailure, CaptionRequest
from action100m.models.captioners.hf import TransformersCaptioner
from action100m.models.captioners.openai_compat import OpenAICaptioner

if TYPE_CHECKING:
    from action100m.core.params import CaptionerParams

__all__ = [
    "CaptionFailure",
    "CaptionRequest",
    "Captioner",
    "OpenAICaptioner",
    "TransformersCaptioner",
    "make_captioner",
]


CAPTIONERS: dict[str, type[Captioner]] = {
    "transformers": TransformersCaptioner,
    "openai": OpenAICaptioner,
}


def make_captioner(params: CaptionerParams) -> Captioner:
    """The configured captioner, built from its parameters (weights load later,
    in ``setup()``)."""
    return CAPTIONERS[params.backend].from_params(params)
