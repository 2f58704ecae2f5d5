"""Batches that do not idle: requests grouped by prompt, sized by free memory.

A *unit* is what one row of a batch works on: a single request, or (with a
shared video prefix) one clip and all the prompts asked about it. Units with the
same prompts batch together, shortest prompts first, so a batch of 8-token
action labels never waits for 1,024-token captions. A batch that runs out of GPU
memory is halved and retried (and later batches stay at that size); any other
error is isolated by running the batch's units one at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from action100m.models.captioners.base import CaptionFailure, CaptionRequest

logger = logging.getLogger(__name__)


@dataclass
class Unit:
    """Requests answered by one batch row, and their places in the caller's list."""

    indices: list[int] = field(default_factory=list)
    requests: list[CaptionRequest] = field(default_factory=list)
    by_prompt: bool = True

    @property
    def signature(self) -> tuple:
        """Units batch together only when this is equal."""
        first = self.requests[0]
        if not self.by_prompt:
            return (first.kind, len(self.requests))
        return (first.kind, tuple(r.prompt for r in self.requests))


def make_units(
    batch: list[CaptionRequest], share_clips: bool, by_prompt: bool = True
) -> list[Unit]:
    """One unit per request, or per ``clip_id`` of video requests when sharing.

    With ``by_prompt``, units come back sorted by kind and prompt length (then
    prompt text), so equal prompts are adjacent and batch together; without, in
    the order given, batched regardless of their prompts.
    """
    units: list[Unit] = []
    by_clip: dict[str, Unit] = {}
    for index, request in enumerate(batch):
        clip = request.clip_id if request.kind == "video" else None
        if share_clips and clip is not None:
            unit = by_clip.get(clip)
            if unit is None:
                unit = by_clip[clip] = Unit(by_prompt=by_prompt)
                units.append(unit)
        else:
            unit = Unit(by_prompt=by_prompt)
            units.append(unit)
        unit.indices.append(index)
        unit.requests.append(request)

    def key(unit: Unit) -> tuple:
        kind, prompts = unit.signature
        return (kind, sum(len(p) for p in prompts), prompts)

    return sorted(units, key=key) if by_prompt else units


def is_out_of_memory(exc: BaseException) -> bool:
    """A CUDA (or other accelerator) out-of-memory error."""
    name = type(exc).__name__
    return name == "OutOfMemoryError" or "out of memory" in str(exc).lower()


def run_batches(
    units: list[Unit],
    generate: Callable[[list[Unit]], list[list[str]]],
    limit: Callable[[Unit], int],
    on_out_of_memory: Callable[[int], None],
    size: int,
) -> list[str | CaptionFailure]:
    """Answer every unit's requests; results in the caller's order.

    Args:
        units: From :func:`make_units`.
        generate: Texts per unit (per request) for a batch of equal-signature units.
        limit: The largest batch to try now, starting at this unit.
        on_out_of_memory: Told the batch size that ran out of memory.
        size: The number of requests in the caller's list.
    """
    results: list[str | CaptionFailure | None] = [None] * size

    def store(unit: Unit, answers: list[str | CaptionFailure]) -> None:
        for index, answer in zip(unit.indices, answers, strict=True):
            results[index] = answer

    pos = 0
    while pos < len(units):
        signature = units[pos].signature
        end = pos
        while end < len(units) and units[end].signature == signature:
            end += 1
        count = max(1, min(limit(units[pos]), end - pos))
        chunk = units[pos : pos + count]
        try:
            for unit, texts in zip(chunk, generate(chunk), strict=True):
                store(unit, texts)
        except Exception as exc:  # noqa: BLE001 - halve, isolate or record
            if is_out_of_memory(exc) and count > 1:
                logger.warning("out of memory at batch %d: halving", count)
                on_out_of_memory(count)
                continue
            if count > 1:
                for unit in chunk:
                    store(unit, _alone(unit, generate))
            else:
                logger.warning("caption generation failed: %s", exc)
                reason = CaptionFailure(f"{type(exc).__name__}: {exc}")
                store(chunk[0], [reason] * len(chunk[0].requests))
        pos += count
    return results  # type: ignore[return-value]


def _alone(unit: Unit, generate) -> list[str | CaptionFailure]:
    try:
        return list(generate([unit])[0])
    except Exception as exc:  # noqa: BLE001 - the failing request, recorded
        logger.warning("caption generation failed: %s", exc)
        return [CaptionFailure(f"{type(exc).__name__}: {exc}")] * len(unit.requests)
