"""Chat clients for Stage 3: parse -> validate -> retry, with a response cache.

``ChatClient.complete`` owns what every backend shares: the cache look-up, one
request for identical conversations in flight, and the attempt loop (one
request, parsing and validating the answer, backoff on transient faults, and a
specific reason when the attempts run out). Backends only implement
``_request``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from action100m.models.base import StageModel
from action100m.models.llm.cache import ResponseCache, request_key
from action100m.models.llm.schema import (
    AnnotationError,
    GptAnnotation,
    annotation_json_schema,
    parse_annotation,
)
from action100m.models.openai_faults import (
    PermanentError,
    TransientError,
    retry_delay,
    status_fault,
)
from action100m.models.work import VIDEO_WORK, WorkCounter

logger = logging.getLogger(__name__)


class CompletionFailed(Exception):
    """No valid answer after every attempt; the message says why."""


@dataclass
class RawAnswer:
    text: str | None
    finish_reason: str | None
    usage: dict[str, int] = field(default_factory=dict)


@dataclass
class Completion:
    """A validated answer.

    Attributes:
        attempts: The attempt that gave it (1: the first request was answered).
        usage: That attempt's token counts.
        cached: Nothing was sent for this asker: the answer came from the disk
            cache, or from an identical request another asker had in flight.
        request: The parameters of the attempt that gave it (no seed).
    """

    annotation: GptAnnotation
    text: str
    attempts: int
    usage: dict[str, int]
    cached: bool
    request: dict[str, Any] = field(default_factory=dict)


def _stored_completion(stored: dict[str, Any] | None) -> Completion | None:
    """The completion a cache entry holds, or None.

    An entry written by :meth:`ChatClient.complete` holds a valid answer and the
    attempt that gave it. An entry without ``attempts`` is one attempt's answer
    in the earlier format (valid or not): the attempt loop replays it.
    """
    if not stored or "attempts" not in stored:
        return None
    try:
        annotation = parse_annotation(stored.get("text"))
    except AnnotationError:  # the schema changed since: ask again
        return None
    return Completion(
        annotation,
        stored["text"],
        int(stored["attempts"]),
        stored.get("usage") or {},
        True,
        stored.get("request") or {},
    )


@dataclass
class _Shared:
    task: asyncio.Task
    waiters: int = 0


class InFlight:
    """Identical requests in flight on one event loop: the first is run, the
    others wait for its result (or its exception).

    The shared task runs in the context of the asker that started it, so its
    work is counted to that asker's video. It is cancelled only when every asker
    waiting for it has been cancelled.
    """

    def __init__(self) -> None:
        self._shared: dict[str, _Shared] = {}

    async def run(
        self, key: str, start: Callable[[], Coroutine[Any, Any, Any]]
    ) -> tuple[Any, bool]:
        """``start()``'s result, or that of the same ``key`` already in flight.

        Returns:
            The result, and whether it was another asker's request.
        """
        loop = asyncio.get_running_loop()
        shared = self._shared.get(key)
        joined = shared is not None and shared.task.get_loop() is loop
        if not joined:
            shared = _Shared(loop.create_task(start()))
            self._shared[key] = shared
            shared.task.add_done_callback(lambda _: self._forget(key, shared))
        shared.waiters += 1
        try:
            return await asyncio.shield(shared.task), joined
        except asyncio.CancelledError:
            if shared.waiters == 1 and not shared.task.done():
                self._forget(key, shared)  # a later asker starts afresh
                shared.task.cancel()
            raise
        finally:
            shared.waiters -= 1

    def _forget(self, key: str, shared: _Shared) -> None:
        if self._shared.get(key) is shared:
            del self._shared[key]


EFFORT_LADDER = ("high", "medium", "low")


def after_truncation(
    effort: str | None, max_tokens: int, max_tokens_limit: int
) -> tuple[str | None, int]:
    """What the retry of an answer cut at ``max_tokens`` asks for instead.

    A lower reasoning effort first (gpt-oss spends most of its budget reasoning),
    then, once the effort is at its lowest or not used, a doubled budget up to
    ``max_tokens_limit``.
    """
    if effort in EFFORT_LADDER[:-1]:
        return EFFORT_LADDER[EFFORT_LADDER.index(effort) + 1], max_tokens
    return effort, min(max_tokens * 2, max(max_tokens_limit, max_tokens))


class ChatClient(StageModel, ABC):
    """Structured-output chat completions with retries and a response cache.

    A valid answer is cached under the request as first asked (model, messages,
    and the first attempt's temperature, budget, seed and reasoning effort),
    whichever attempt gave it: asking again sends nothing. An answer that never
    validated is not cached.

    Args:
        model: Model name (served name or local folder).
        max_attempts: Attempts per request before it fails.
        temperature: Sampling temperature.
        max_tokens: Completion budget per request.
        backoff_s: First retry delay (doubles each attempt, capped at 30 s).
        cache: Response cache (None: no cache).
        seed: Base seed; attempt ``k`` uses ``seed + k - 1``.
        retry_temperatures: Temperature of the attempt after the first, second ...
            invalid answer (the last repeats), so that the retry of a greedy
            request that gave an invalid answer is a different request: a server
            decoding greedily ignores the seed.
        max_tokens_limit: Largest budget the retry of a truncated answer may ask.
    """

    backend = "base"

    def __init__(
        self,
        model: str,
        max_attempts: int = 5,
        temperature: float = 0.0,
        max_tokens: int = 8192,
        backoff_s: float = 1.0,
        cache: ResponseCache | None = None,
        seed: int = 0,
        retry_temperatures: tuple[float, ...] = (0.3, 0.6, 0.9),
        max_tokens_limit: int | None = 32768,
    ) -> None:
        super().__init__()
        self.model = model
        self.max_attempts = max_attempts
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.backoff_s = backoff_s
        self.cache = cache or ResponseCache(None)
        self.seed = seed
        self.retry_temperatures = tuple(retry_temperatures)
        self.max_tokens_limit = max_tokens_limit or max_tokens
        self.work = WorkCounter()  # this client's calls and tokens, every video's
        self._in_flight = InFlight()

    @abstractmethod
    async def _request(
        self, messages: list[dict[str, str]], params: dict[str, Any]
    ) -> RawAnswer:
        """Send one request; raise TransientError or PermanentError on faults."""

    def _temperature(self, invalid_answers: int) -> float:
        if invalid_answers == 0 or not self.retry_temperatures:
            return self.temperature
        schedule = self.retry_temperatures
        return schedule[min(invalid_answers, len(schedule)) - 1]

    def _params(
        self, attempt: int, invalid: int, effort: str | None, max_tokens: int
    ) -> dict[str, Any]:
        """What attempt ``attempt`` asks for, after ``invalid`` invalid answers."""
        params: dict[str, Any] = {
            "temperature": self._temperature(invalid),
            "max_tokens": max_tokens,
            "seed": self.seed + attempt - 1,
        }
        if effort:
            params["reasoning_effort"] = effort
        return params

    def count(self, usage: dict[str, int]) -> None:
        """One answered request: in this client's totals and the current video's."""
        self.work.add_usage(usage)
        video = VIDEO_WORK.get()
        if video is not None:
            video.add_usage(usage)

    async def complete(
        self, messages: list[dict[str, str]], reasoning_effort: str | None = None
    ) -> Completion:
        """A validated annotation for ``messages``.

        The cache is asked first, by the request as first asked; an identical
        conversation already in flight is waited for instead of sent again
        (its failure is every waiter's). Otherwise the attempts run: see
        :meth:`_attempts`.

        Raises:
            CompletionFailed: After ``max_attempts``, with the last reason.
        """
        first = self._params(1, 0, reasoning_effort, self.max_tokens)
        key = request_key(self.model, messages, first)
        done = _stored_completion(self.cache.get(key))
        if done is not None:
            return done
        done, joined = await self._in_flight.run(
            key, lambda: self._attempts(messages, reasoning_effort, key)
        )
        return replace(done, cached=True) if joined else done

    async def _attempts(
        self, messages: list[dict[str, str]], effort: str | None, key: str
    ) -> Completion:
        """Ask until an answer validates; cache it under ``key``.

        A transient fault (HTTP 429/5xx, time-out) sends the same request again
        after a backoff. An invalid answer changes the next request: it samples
        at the next of ``retry_temperatures``; an answer cut at ``max_tokens``
        also asks for less reasoning or a larger budget (:func:`after_truncation`).
        """
        reason = "no attempt made"
        max_tokens, invalid, sent = self.max_tokens, 0, False
        for attempt in range(1, self.max_attempts + 1):
            params = self._params(attempt, invalid, effort, max_tokens)
            # A cache of the earlier format holds each attempt's answer under
            # that attempt's request: replay it rather than ask again.
            older = self.cache.get(request_key(self.model, messages, params))
            if older is not None and "attempts" in older:
                older = None  # a current entry that no longer validates
            delay = None
            try:
                if older is None:
                    sent = True
                    answer = await self._request(messages, params)
                else:
                    answer = RawAnswer(
                        older.get("text"),
                        older.get("finish_reason"),
                        older.get("usage") or {},
                    )
                if answer.finish_reason == "length":
                    effort, max_tokens = after_truncation(
                        effort, max_tokens, self.max_tokens_limit
                    )
                    raise AnnotationError(
                        f"truncated output (finish_reason=length at "
                        f"{params['max_tokens']} tokens)"
                    )
                annotation = parse_annotation(answer.text)
            except AnnotationError as exc:
                reason = f"invalid answer: {exc}"
                invalid += 1
                delay = 0.0
            except TransientError as exc:
                reason = str(exc)
                delay = exc.retry_after
            except PermanentError as exc:
                raise CompletionFailed(f"{exc} (not retried)") from exc
            else:
                request = {k: v for k, v in params.items() if k != "seed"}
                self.cache.put(
                    key, {**answer.__dict__, "attempts": attempt, "request": request}
                )
                return Completion(
                    annotation,
                    answer.text or "",
                    attempt,
                    answer.usage,
                    not sent,
                    request,
                )
            if attempt < self.max_attempts:
                await asyncio.sleep(retry_delay(self.backoff_s, attempt, delay))
        raise CompletionFailed(f"failed after {self.max_attempts} attempts: {reason}")

    async def aclose(self) -> None:
        """Close what the running event loop holds for this client (nothing here)."""

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "max_attempts": self.max_attempts,
            "seed": self.seed,
            "retry_temperatures": list(self.retry_temperatures),
            "max_tokens_limit": self.max_tokens_limit,
        }


class OpenAIChatClient(ChatClient):
    """Any OpenAI-compatible endpoint (vLLM, SGLang, a hosted API).

    Requests go out as plain HTTP through one aiohttp session per event loop
    (its connection pool sized to ``max_concurrency``): a fraction of a
    millisecond of CPU each, so a few thousand requests per second keep the
    endpoint's slots full.

    Args:
        base_url: e.g. ``http://localhost:8000/v1``.
        api_key: The key (never logged); "EMPTY" for local servers.
        timeout_s: Per-request timeout.
        max_concurrency: Requests in flight across every video and node.
        structured_output: Send ``response_format`` with the JSON schema.
        **kwargs: See :class:`ChatClient`.
    """

    backend = "openai"

    def __init__(
        self,
        model: str,
        base_url: str = "http://localhost:8000/v1",
        api_key: str | None = None,
        timeout_s: float = 600.0,
        max_concurrency: int = 32,
        structured_output: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        self.base_url = base_url
        self._api_key = api_key or "EMPTY"
        self.timeout_s = timeout_s
        self.max_concurrency = max_concurrency
        self.structured_output = structured_output
        self._session: Any = None
        self._limit: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proxy: str | None = None

    def _session_here(self) -> Any:
        """The session and bound of the running loop (made on first use there)."""
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._limit = asyncio.Semaphore(self.max_concurrency)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_concurrency),
                # Per operation, as the openai SDK (httpx) times out: a slow
                # answer fails after timeout_s without a byte, not a long upload.
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=self.timeout_s,
                    sock_read=self.timeout_s,
                ),
                headers={"Authorization": f"Bearer {self._api_key}"},
                cookie_jar=aiohttp.DummyCookieJar(),  # an API sets none
            )
            self._proxy = _proxy_for(self.base_url)
        return self._session

    async def aclose(self) -> None:
        """Close the running loop's session (its connections to the endpoint)."""
        if self._session is not None and self._loop is asyncio.get_running_loop():
            await self._session.close()
            self._session = self._loop = None

    async def _request(
        self, messages: list[dict[str, str]], params: dict[str, Any]
    ) -> RawAnswer:
        import aiohttp

        session = self._session_here()
        extra: dict[str, Any] = {}
        if self.structured_output:
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": "segment_annotation",
                    "schema": annotation_json_schema(),
                    "strict": True,
                },
            }
        body = {"model": self.model, "messages": messages, **params, **extra}
        url = self.base_url.rstrip("/") + "/chat/completions"
        try:
            async with (
                self._limit,
                session.post(url, json=body, proxy=self._proxy) as response,
            ):
                text = await response.text()
                if response.status >= 400:
                    raise status_fault(
                        response.status, _error_message(text), response.headers
                    )
        except TimeoutError as exc:
            raise TransientError(f"timed out after {self.timeout_s} s") from exc
        except aiohttp.ClientError as exc:
            raise TransientError(f"connection error: {exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TransientError(f"answer is not JSON: {text[:200]!r}") from exc
        if not isinstance(data, dict) or not data.get("choices"):
            raise TransientError("answer without choices")
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        self.count(usage)
        return RawAnswer(
            (choice.get("message") or {}).get("content"),
            choice.get("finish_reason"),
            {k: v for k, v in usage.items() if isinstance(v, int)},
        )

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "base_url": self.base_url,
            "max_concurrency": self.max_concurrency,
            "structured_output": self.structured_output,
        }


def _proxy_for(url: str) -> str | None:
    """The proxy that ``HTTP(S)_PROXY`` / ``NO_PROXY`` give for ``url``, as the SDK.

    Looked up once per session: aiohttp's own per-request look-up costs about a
    tenth of the throughput at a few hundred requests per second.
    """
    from urllib.parse import urlsplit
    from urllib.request import getproxies, proxy_bypass

    parts = urlsplit(url)
    if parts.hostname and proxy_bypass(parts.hostname):
        return None
    return getproxies().get(parts.scheme)


def _error_message(text: str) -> str:
    """The ``error.message`` of an OpenAI-style error body, else its start."""
    try:
        error = json.loads(text).get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    except (json.JSONDecodeError, AttributeError):
        pass
    return text[:200]
