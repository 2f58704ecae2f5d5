"""Self-Refine: a draft, then rounds that verify and revise the previous answer."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any

from action100m.llm.clients import ChatClient, CompletionFailed
from action100m.llm.prompts import build_messages, refine_messages
from action100m.tree import GPT_MIN_S, Node, SegmentTree

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
) -> dict[str, Any]:
    """Run the Self-Refine rounds for one segment.

    Args:
        client: The chat client.
        messages: The first round's conversation.
        rounds: Number of rounds (1 = no refinement).
        reasoning_efforts: Reasoning effort per round (the last one repeats).

    Returns:
        ``gpt`` (the last round's annotation, or None), every round's answer in
        ``rounds``, and ``error`` when a round failed.
    """
    conversation = list(messages)
    history: list[dict[str, Any]] = []
    for index in range(rounds):
        effort = (
            reasoning_efforts[min(index, len(reasoning_efforts) - 1)]
            if (reasoning_efforts)
            else None
        )
        try:
            done = await client.complete(conversation, effort)
        except CompletionFailed as exc:
            return {
                "gpt": None,
                "rounds": history,
                "error": f"round {index + 1}: {exc}",
            }
        answer = done.annotation.model_dump()
        history.append(
            {
                "round": index + 1,
                "annotation": answer,
                "attempts": done.attempts,
                "cached": done.cached,
                "usage": done.usage,
            }
        )
        conversation = refine_messages(
            conversation, json.dumps(answer, ensure_ascii=False)
        )
    return {"gpt": history[-1]["annotation"], "rounds": history, "error": None}


async def annotate_tree(
    client: ChatClient, tree: SegmentTree, params: Any
) -> dict[str, Any]:
    """``gpt`` for every eligible node of one tree, all nodes concurrently.

    Args:
        client: The chat client (bounds concurrency across all videos).
        tree: The tree with Stage 2 captions and metadata.
        params: ``AggregationParams``.

    Returns:
        ``annotations`` (node id -> gpt), per-node ``rounds``, ``errors`` and
        prompt sizes.
    """
    kids = tree.children()
    nodes = eligible_nodes(tree)
    prompts = [
        build_messages(
            tree,
            node,
            params.prompt.global_levels,
            params.prompt.subtree_depth,
            params.prompt.transcript_margin_s,
            kids=kids,
            max_chars=params.prompt.max_chars,
        )
        for node in nodes
    ]
    results = await asyncio.gather(
        *(
            refine_annotation(
                client, messages, params.llm.rounds, params.llm.reasoning_effort
            )
            for messages in prompts
        )
    )
    annotations, rounds, errors = {}, {}, []
    for node, result in zip(nodes, results, strict=True):
        rounds[node.node_id] = result["rounds"]
        if result["gpt"] is None:
            errors.append(
                {"node_id": node.node_id, "field": "gpt", "reason": result["error"]}
            )
        else:
            annotations[node.node_id] = result["gpt"]
    logger.info(
        "aggregation: %s: %d eligible nodes, %d annotated, %d failed",
        tree.video_uid,
        len(nodes),
        len(annotations),
        len(errors),
    )
    return {
        "video_uid": tree.video_uid,
        "annotations": annotations,
        "rounds": rounds,
        "errors": errors,
        "prompt_chars": [sum(len(m["content"]) for m in p) for p in prompts],
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
