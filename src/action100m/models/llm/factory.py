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
    """The configured client, built from its parameters: an OpenAI-compatible
    endpoint or an in-process transformers model (loaded later, in ``setup()``)."""
    cache = ResponseCache(params.cache_dir)
    if params.backend == "transformers":
        from action100m.models.llm.local import TransformersChatClient

        return TransformersChatClient.from_params(params, cache=cache)
    api_key = os.environ.get(params.api_key_env)
    if not api_key:
        logger.info(
            "aggregation: %s is not set; requests carry no API key", params.api_key_env
        )
    return OpenAIChatClient.from_params(params, cache=cache, api_key=api_key)
