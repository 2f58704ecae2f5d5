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


def make_captioner(params: CaptionerParams) -> Captioner:
    """Build the configured captioner (weights load later, in ``setup()``)."""
    if params.backend == "openai":
        return OpenAICaptioner(
            model_id=params.model_id,
            base_url=params.base_url,
            api_key_env=params.api_key_env,
            max_concurrency=params.max_concurrency,
            timeout_s=params.timeout_s,
            max_attempts=params.max_attempts,
            max_new_tokens=params.max_new_tokens,
            temperature=params.temperature,
            seed=params.seed,
        )
    return TransformersCaptioner(
        model_id=params.model_id,
        revision=params.revision,
        device=params.device,
        dtype=params.dtype,
        batch_size=params.batch_size,
        max_new_tokens=params.max_new_tokens,
        do_sample=params.do_sample,
        temperature=params.temperature,
        seed=params.seed,
        share_video_prefix=getattr(params, "share_video_prefix", False),
        cache_implementation=params.cache_implementation,
        batch_by_prompt=params.batch_by_prompt,
    )
