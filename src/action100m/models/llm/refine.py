"""Self-Refine: a draft, then rounds that verify and revise the previous answer."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any

from action100m.core.tree import GPT_MIN_S, Node, SegmentTree
from action100m.models.llm.clients import ChatClient, CompletionFailed
from action100m.models.llm.prompts import (
    PromptBudgetError,
    PromptBuilder,
    PromptTemplate,
    default_template,
    refine_messages,
)

logger = logging.getLogger(__name__)


def eligible_nodes(tree: SegmentTree) -> list[Node]:
    """Internal nodes of at least 4 s: exactly the release's ``gpt`` rule."""
    kids = tree.children()
    return [
        n for n in tree.nodes if n.node_id in kids and n.duration >= GPT_MIN_S - 1e-3
    ]


async def refine_annotation(
    client: ChatClient,
    messages: list[dict[str, str]],
    rounds: int,
    reasoning_efforts: list[str | None],
    template: PromptTemplate | None = None,
    on_rounds: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run the Self-Refine rounds for one segment.

    A round that fails after its retries ends the refinement, but never
    discards what an earlier round gave: the node keeps the last valid round's
    answer. Only a failed first round leaves the node without an annotation.

    Args:
        client: The chat client.
        messages: The first round's conversation.
        rounds: Number of rounds (1 = no refinement).
        reasoning_efforts: Reasoning effort per round (the last one repeats).
        template: Gives the refine turn (None: the default template).
        on_rounds: Called with the number of rounds settled: 1 per round
            answered, all those left when a round fails.

    Returns:
        ``gpt`` (the last valid round's annotation, or None), ``landed_round``
        (the round ``gpt`` comes from, or None), every valid round in
        ``rounds``, and ``error`` (the failed round and why, or None).
    """
    conversation = list(messages)
    history: list[dict[str, Any]] = []
    error = None
    settle = on_rounds or (lambda count: None)
    for index in range(rounds):
        effort = (
            reasoning_efforts[min(index, len(reasoning_efforts) - 1)]
            if reasoning_efforts
            else None
        )
        try:
            done = await client.complete(conversation, effort)
        except CompletionFailed as exc:
            error = f"round {index + 1}: {exc}"
            settle(rounds - index)
            break
        settle(1)
        answer = done.annotation.model_dump()
        history.append(
            {
                "round": index + 1,
                "annotation": answer,
                "attempts": done.attempts,
                "cached": done.cached,
                "usage": done.usage,
                "request": done.request,
            }
        )
        conversation = refine_messages(
            conversation, json.dumps(answer, ensure_ascii=False), template
        )
    last = history[-1] if history else None
    return {
        "gpt": last["annotation"] if last else None,
        "landed_round": last["round"] if last else None,
        "rounds": history,
        "error": error,
    }


async def gather_or_cancel(coroutines: list[Coroutine]) -> list[Any]:
    """Every coroutine's result, concurrently; if one raises, the others are
    cancelled and waited for before its exception goes on, so that a failed
    video leaves no request of its own running (nor counting) after it."""
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def annotate_tree(
    client: ChatClient,
    tree: SegmentTree,
    params: Any,
    template: PromptTemplate | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """``gpt`` for every eligible node of one tree, all nodes concurrently.

    Args:
        client: The chat client (bounds concurrency across all videos).
        tree: The tree with Stage 2 captions and metadata.
        params: ``AggregationParams``.
        template: The prompt template (None: the default template file).
        on_progress: Called with ``(rounds settled, rounds)`` over all eligible
            nodes as rounds are answered (live progress).

    Returns:
        ``annotations`` (node id -> gpt), per-node ``rounds``, ``landed_round``,
        ``prompt_context`` (what each prompt's budget dropped), ``errors`` and
        prompt sizes.
    """
    template = template or default_template()
    builder = PromptBuilder(tree, template, params.prompt)
    nodes = eligible_nodes(tree)
    prompts, contexts, prompt_errors = {}, {}, {}
    for node in nodes:
        try:
            prompt = builder.build(node)
        except PromptBudgetError as exc:
            prompt_errors[node.node_id] = f"prompt: {exc}"
            continue
        prompts[node.node_id] = prompt.messages
        contexts[node.node_id] = prompt.context

    total, settled = len(nodes) * params.llm.rounds, 0
    report = on_progress or (lambda done, total: None)
    report(0, total)

    def rounds_settled(count: int) -> None:  # on this event loop only
        nonlocal settled
        settled += count
        report(settled, total)

    async def no_prompt(reason: str) -> dict[str, Any]:
        rounds_settled(params.llm.rounds)
        return {"gpt": None, "landed_round": None, "rounds": [], "error": reason}

    results = await gather_or_cancel(
        [
            refine_annotation(
                client,
                prompts[node.node_id],
                params.llm.rounds,
                params.llm.reasoning_effort,
                template,
                rounds_settled,
            )
            if node.node_id in prompts
            else no_prompt(prompt_errors[node.node_id])
            for node in nodes
        ]
    )
    annotations, rounds, landed, errors = {}, {}, {}, []
    for node, result in zip(nodes, results, strict=True):
        rounds[node.node_id] = result["rounds"]
        if result["gpt"] is not None:
            annotations[node.node_id] = result["gpt"]
            landed[node.node_id] = result["landed_round"]
        if result["error"] is not None:
            # A later round's failure is recorded too, with the round that landed.
            errors.append(
                {
                    "node_id": node.node_id,
                    "field": "gpt",
                    "reason": result["error"],
                    "landed_round": result["landed_round"],
                }
            )
    logger.info(
        "aggregation: %s: %d eligible nodes, %d annotated (%d before the last "
        "round), %d without annotation",
        tree.video_uid,
        len(nodes),
        len(annotations),
        sum(e["landed_round"] is not None for e in errors),
        len(nodes) - len(annotations),
    )
    return {
        "video_uid": tree.video_uid,
        "annotations": annotations,
        "rounds": rounds,
        "landed_round": landed,
        "prompt_context": contexts,
        "errors": errors,
        "prompt_chars": [c["prompt_chars"] for c in contexts.values()],
        "prompt_template": template.hash(),
        "model": client.describe(),
    }


class BackgroundLoop:
    """An asyncio event loop in a daemon thread, for work submitted from sync code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def submit(self, coroutine: Coroutine) -> Future:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def close(self) -> None:
        """Stop the loop and its thread (after the work submitted so far)."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()
