"""Faults of OpenAI-compatible endpoints: which to retry, and after how long.

Shared by the Stage 2 captioner (through the ``openai`` SDK with its own
retries turned off) and the Stage 3 chat client (plain HTTP with aiohttp), which
both talk to such endpoints (vLLM, SGLang, hosted APIs).
"""

from __future__ import annotations

from typing import Any

MAX_BACKOFF_S = 30.0


class TransientError(Exception):
    """A fault worth retrying (HTTP 429/5xx, timeout, refused connection)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentError(Exception):
    """A fault that retrying cannot fix (HTTP 4xx other than 429)."""


def _retry_after(headers: Any) -> float | None:
    try:
        value = headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


def status_fault(
    status: int, message: str, headers: Any = None
) -> TransientError | PermanentError:
    """HTTP 429 and 5xx are worth a retry (after ``Retry-After``); other 4xx not."""
    reason = f"HTTP {status}: {message}"
    if status == 429 or status >= 500:
        return TransientError(reason, _retry_after(headers))
    return PermanentError(reason)


def endpoint_fault(
    exc: Exception, timeout_s: float
) -> TransientError | PermanentError | None:
    """What an ``openai`` SDK error means for a retry (None: not an endpoint fault)."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        return status_fault(exc.status_code, exc.message, exc.response.headers)
    if isinstance(exc, openai.APITimeoutError):  # before its base class below
        return TransientError(f"timed out after {timeout_s} s")
    if isinstance(exc, openai.APIConnectionError):
        return TransientError(f"connection error: {exc.__cause__ or exc}")
    return None


def retry_delay(
    backoff_s: float, attempt: int, retry_after: float | None = None
) -> float:
    """The server's ``Retry-After`` if given, else ``backoff_s`` doubling (capped)."""
    if retry_after is not None:
        return retry_after
    return min(backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
