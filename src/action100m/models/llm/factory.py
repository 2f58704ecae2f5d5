"""Build the configured Stage 3 chat client; the backend is a config line."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from action100m.models.llm.cache import ResponseCache
from action100m.models.llm.clients import ChatClient, OpenAIChatClient

if TYPE_CHECKING:
    from action100m.core.params import LLMParams

logger = logging.getLogger(__name__)


def make_chat_client(params: LLMParams) -> ChatClient:
    """An OpenAI-compatible or in-process transformers client."""
    common = {
        "max_attempts": params.max_attempts,
        "temperature": params.temperature,
        "max_tokens": params.max_tokens,
        "backoff_s": params.backoff_s,
        "cache": ResponseCache(params.cache_dir),
        "seed": params.seed,
        "retry_temperatures": tuple(params.retry_temperatures),
        "max_tokens_limit": params.max_tokens_limit,
    }
    if params.backend == "transformers":
        from action100m.models.llm.local import TransformersChatClient

        return TransformersChatClient(
            params.model,
            device=params.device,
            dtype=params.dtype,
            max_field_chars=params.max_field_chars,
            reasoning_max_tokens=params.reasoning_max_tokens,
            **common,
        )
    api_key = os.environ.get(params.api_key_env)
    if not api_key:
        logger.info(
            "aggregation: %s is not set; requests carry no API key", params.api_key_env
        )
    return OpenAIChatClient(
        params.model,
        base_url=params.base_url,
        api_key=api_key,
        timeout_s=params.timeout_s,
        max_concurrency=params.max_concurrency,
        structured_output=params.structured_output,
        **common,
    )
