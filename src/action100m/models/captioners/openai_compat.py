"""``OpenAICaptioner``: any OpenAI-compatible vision endpoint (vLLM, SGLang, ...).

Frames travel as base64 JPEG data URLs in one user message. One client and one
event loop (a background thread) live as long as the captioner, created by
``setup()``: every request of every node and video goes through them, so at most
``max_concurrency`` are in flight and the next ones are sent as soon as a slot
frees. ``submit`` returns at once (the caller keeps decoding), and blocks only
while ``2 * max_concurrency`` requests are outstanding (in flight or queued), so
encoded frames never pile up. HTTP 429/5xx (honouring Retry-After), timeouts, refused
connections and empty answers are retried with exponential backoff, then
recorded as failures.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import os
import threading
from concurrent.futures import Future
from typing import Any

import numpy as np

from action100m.models.captioners.base import Captioner, CaptionFailure, CaptionRequest
from action100m.models.llm.refine import BackgroundLoop
from action100m.models.openai_faults import PermanentError, endpoint_fault, retry_delay

logger = logging.getLogger(__name__)


def jpeg_data_url(frame: np.ndarray, quality: int = 90) -> str:
    """A ``data:image/jpeg;base64,...`` URL of one RGB frame."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(frame, dtype=np.uint8)).save(
        buffer, format="JPEG", quality=quality
    )
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


class OpenAICaptioner(Captioner):
    """Chat-completions captioner with bounded concurrency and retries.

    Args:
        model_id: The served model name.
        base_url: The endpoint, e.g. ``http://localhost:8000/v1`` (vLLM).
        api_key_env: Environment variable holding the API key (never logged).
        max_concurrency: Requests in flight at once, across every call and
            thread using this captioner.
        timeout_s: Per-request timeout.
        max_attempts: Attempts per request before it is recorded as failed.
        max_new_tokens: ``max_tokens`` of each request.
        temperature: Sampling temperature (0 = greedy).
        seed: Request seed, where the server honours it.
        jpeg_quality: JPEG quality of the frames.
        backoff_s: First retry delay; doubles on each attempt.
    """

    streams = True

    def __init__(
        self,
        model_id: str,
        base_url: str = "http://localhost:8000/v1",
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 16,
        timeout_s: float = 120.0,
        max_attempts: int = 4,
        max_new_tokens: int = 1024,
        temperature: float = 0.0,
        seed: int = 0,
        jpeg_quality: int = 90,
        backoff_s: float = 0.5,
    ) -> None:
        super().__init__()
        self.model_id = model_id
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.seed = seed
        self.jpeg_quality = jpeg_quality
        self.backoff_s = backoff_s
        self._loop: BackgroundLoop | None = None
        self._client = None
        self._limit: asyncio.Semaphore | None = None
        self._waiting = threading.BoundedSemaphore(2 * max_concurrency)

    def setup(self) -> None:
        from openai import AsyncOpenAI

        async def start() -> None:
            # Made on the loop that uses them.
            self._limit = asyncio.Semaphore(self.max_concurrency)
            self._client = AsyncOpenAI(
                base_url=self.base_url,
                api_key=os.environ.get(self.api_key_env) or "EMPTY",
                timeout=self.timeout_s,
                max_retries=0,
            )

        self._loop = BackgroundLoop()
        self._loop.submit(start()).result()

    def _messages(self, request: CaptionRequest) -> list[dict[str, Any]]:
        frames = request.frames if request.kind == "video" else request.frames[:1]
        content: list[dict[str, Any]] = [
            {
                "type": "image_url",
                "image_url": {"url": jpeg_data_url(f, self.jpeg_quality)},
            }
            for f in frames
        ]
        content.append({"type": "text", "text": request.prompt})
        return [{"role": "user", "content": content}]

    async def _one(
        self, messages: list[dict[str, Any]], frames: int
    ) -> str | CaptionFailure:
        import openai

        last = "no attempt"
        for attempt in range(1, self.max_attempts + 1):
            retry_after = None
            try:
                async with self._limit:
                    response = await self._client.chat.completions.create(
                        model=self.model_id,
                        messages=messages,
                        max_tokens=self.max_new_tokens,
                        temperature=self.temperature,
                        seed=self.seed,
                    )
            except openai.OpenAIError as exc:
                fault = endpoint_fault(exc, self.timeout_s)
                if fault is None:
                    raise
                if isinstance(fault, PermanentError):
                    return CaptionFailure(str(fault))
                last, retry_after = str(fault), fault.retry_after
            else:
                usage = response.usage.model_dump() if response.usage else {}
                self.work.add_usage(usage)
                self.work.add(frames=frames)
                text = (response.choices[0].message.content or "").strip()
                if text:
                    return text
                last = "empty answer"
            if attempt < self.max_attempts:
                await asyncio.sleep(retry_delay(self.backoff_s, attempt, retry_after))
        logger.warning("caption request failed after %d attempts: %s", attempt, last)
        return CaptionFailure(f"failed after {self.max_attempts} attempts: {last}")

    def submit(self, request: CaptionRequest) -> Future:
        """Send one request (frames encoded here); the future gives its text.

        Blocks while ``2 * max_concurrency`` requests are outstanding.
        """
        self.ensure_setup()
        messages = self._messages(request)
        self._waiting.acquire()
        frames = len(messages[0]["content"]) - 1  # the images sent
        future = self._loop.submit(self._one(messages, frames))
        future.add_done_callback(lambda _: self._waiting.release())
        return future

    def __call__(self, batch: list[CaptionRequest]) -> list[str | CaptionFailure]:
        futures = [self.submit(r) for r in batch]
        return [f.result() for f in futures]

    def close(self) -> None:
        """Close the client and stop the event loop."""
        if self._loop is not None:
            self._loop.submit(self._client.close()).result()
            self._loop.loop.call_soon_threadsafe(self._loop.loop.stop)
            self._loop = None
            self._ready = False

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "openai",
            "model_id": self.model_id,
            "base_url": self.base_url,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
        }
