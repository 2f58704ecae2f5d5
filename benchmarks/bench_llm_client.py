"""Stage 3 client throughput and prompt sizes.

1. Requests/s of ``OpenAIChatClient`` against a loopback OpenAI-compatible server
   that answers after a fixed latency, at a fixed concurrency, over many
   requests; compared with the ideal ``concurrency / latency``.
2. Prefix caching on the release sample: every Stage 3 request of every eligible
   node, 3 Self-Refine rounds (the released annotation standing in for each
   draft), counted the way vLLM's automatic prefix caching counts reuse: a block
   of the prompt is served from the cache when the same text up to the block's
   end was sent before (blocks of 64 characters, about vLLM's 16 tokens at 4
   characters per token). Printed for the default prompt settings and for the
   earlier ones (a +-30 s transcript window, 3 levels of the whole video).
3. A projection of Stage 3's H100-hours per video-hour that splits the work into
   prefill of the uncached prompt tokens and decoding of the generated tokens,
   each at its own throughput (see ``PREFILL_TOKENS_PER_S``).

    .venv/bin/python -m benchmarks.bench_llm_client [--requests 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from action100m.core.params import PromptParams
from action100m.core.tree import SegmentTree
from action100m.models.llm.clients import OpenAIChatClient
from action100m.models.llm.prompts import (
    PromptBuilder,
    default_template,
    refine_messages,
)
from action100m.models.llm.refine import eligible_nodes

SAMPLE = Path(__file__).resolve().parents[2] / "shared/data/action100m_release_sample"
CHARS_PER_TOKEN = 4.0
BLOCK_CHARS = 64  # ~ vLLM's 16-token KV blocks
# gpt-oss-120b on one H100 with vLLM 0.10.2 in its default configuration, from
# GPUStack's performance lab ("Optimizing GPT-OSS-120B Throughput on NVIDIA H100
# GPUs", baseline column). Prefill: the 32,000-in / 100-out case, 16,137 tokens/s
# in all, 99.7 % of them prompt tokens. Decode: what the 4,000-in / 200-out
# (14,247 tokens/s) and 2,000-in / 100-out (14,386 tokens/s) cases leave once
# their prompts are charged at that prefill rate: 4,265 and 4,537 tokens/s.
PREFILL_TOKENS_PER_S = 16_100.0
DECODE_TOKENS_PER_S = 4_400.0
SETTINGS = {
    "default": PromptParams(),
    "earlier (+-30 s transcript, 3 levels)": PromptParams(
        transcript_margin_s=30.0, global_levels=3
    ),
}


async def _drive(client: OpenAIChatClient, messages: list, n: int) -> None:
    try:
        await _send(client, messages, n)
    finally:
        await client.aclose()


async def _send(client: OpenAIChatClient, messages: list, n: int) -> None:
    await asyncio.gather(
        *(
            client.complete(
                [
                    messages[0],
                    {**messages[1], "content": f"{messages[1]['content']}{i}"},
                ]
            )
            for i in range(n)
        )
    )


def throughput(n: int, concurrency: int, latency: float) -> None:
    messages = [
        {"role": "system", "content": "annotate"},
        {"role": "user", "content": "## Current segment: 0:00.0 → 0:01.0 (1.0 s)\n"},
    ]
    # The server runs in its own process so that it does not share our GIL.
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._latency_server", "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        base_url = server.stdout.readline().strip()
        client = OpenAIChatClient(
            "bench",
            base_url=base_url,
            max_concurrency=concurrency,
            structured_output=False,
        )
        client.ensure_setup()
        start = time.perf_counter()
        asyncio.run(_drive(client, messages, n))
        seconds = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait()
    ideal = concurrency / latency
    rate = n / seconds
    print(
        f"{n} requests, concurrency {concurrency}, "
        f"server latency {latency * 1000:.0f} ms"
    )
    print(
        f"  {rate:.1f} requests/s vs ideal {ideal:.1f}: "
        f"{rate / ideal:.2f}x (goal >= 0.9); load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )


def _serialised(messages: list[dict[str, str]]) -> str:
    """What a harmony server prefills for a conversation (roles and contents)."""
    return "".join(
        f"<|start|>{m['role']}<|message|>{m['content']}<|end|>" for m in messages
    )


class PrefixCache:
    """Counts prompt characters served from an unbounded block-level prefix cache."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.total = self.cached = 0

    def send(self, text: str) -> int:
        """Account for one prompt; return its characters that were cached."""
        key, hits = 0, 0
        for start in range(0, len(text) - BLOCK_CHARS + 1, BLOCK_CHARS):
            key = hash((key, text[start : start + BLOCK_CHARS]))
            if key in self.seen:
                hits += BLOCK_CHARS
            else:
                self.seen.add(key)
        self.total += len(text)
        self.cached += hits
        return hits


def prefix_caching(
    sample: Path, params: PromptParams, rounds: int, completion: int
) -> dict[str, float]:
    """Stage 3's prompts of the whole sample through one prefix cache."""
    template = default_template()
    cache, first = PrefixCache(), PrefixCache()
    first_cached = nodes = 0
    video_s = 0.0
    for row in pq.read_table(sample / "sample.parquet").to_pylist():
        tree = SegmentTree.from_release_row(row)
        builder = PromptBuilder(tree, template, params)
        video_s += tree.root.duration
        by_id = {n["node_id"]: n for n in row["nodes"]}
        for node in eligible_nodes(tree):
            conversation = builder.build(node).messages
            draft = json.dumps(by_id[node.node_id]["gpt"], ensure_ascii=False)
            for round_index in range(rounds):
                text = _serialised(conversation)
                hits = cache.send(text)
                if round_index == 0:
                    first.total += len(text)
                    first_cached += hits
                conversation = refine_messages(conversation, draft, template)
            nodes += 1
    uncached = (cache.total - cache.cached) / CHARS_PER_TOKEN
    generated = nodes * rounds * completion
    hours = video_s / 3600
    return {
        "nodes": nodes,
        "hours": hours,
        "share": cache.cached / cache.total,
        "first_share": first_cached / first.total,
        "prompt_tokens": cache.total / CHARS_PER_TOKEN,
        "uncached_tokens": uncached,
        "generated_tokens": generated,
        "h100_hours_per_video_hour": (
            uncached / PREFILL_TOKENS_PER_S + generated / DECODE_TOKENS_PER_S
        )
        / 3600
        / hours,
        "h100_hours_no_cache": (
            cache.total / CHARS_PER_TOKEN / PREFILL_TOKENS_PER_S
            + generated / DECODE_TOKENS_PER_S
        )
        / 3600
        / hours,
    }


def tokens(sample: Path, rounds: int, completion: int) -> None:
    for name, params in SETTINGS.items():
        found = prefix_caching(sample, params, rounds, completion)
        print(
            f"prompt settings {name}: {found['nodes']} eligible nodes, "
            f"{found['hours']:.2f} video-hours, {rounds} rounds"
        )
        print(
            f"  share of prompt characters already cached: "
            f"{found['share']:.2f} of all, {found['first_share']:.2f} of first-round"
        )
        print(
            f"  {found['prompt_tokens'] / 1e6:.1f} M prompt tokens, "
            f"{found['uncached_tokens'] / 1e6:.1f} M uncached, "
            f"{found['generated_tokens'] / 1e6:.2f} M generated "
            f"({completion} per request)"
        )
        print(
            f"  H100-hours per video-hour: {found['h100_hours_per_video_hour']:.2f} "
            f"with prefix caching, {found['h100_hours_no_cache']:.2f} without "
            f"(prefill {PREFILL_TOKENS_PER_S:.0f} tokens/s, decode "
            f"{DECODE_TOKENS_PER_S:.0f} tokens/s; paper: ~2.35)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--completion-tokens", type=int, default=600)
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    if not args.skip_throughput:
        throughput(args.requests, args.concurrency, args.latency)
    if (SAMPLE / "sample.parquet").exists():
        tokens(SAMPLE, 3, args.completion_tokens)
    else:
        print(json.dumps({"skipped": "release sample not found"}))


if __name__ == "__main__":
    main()
