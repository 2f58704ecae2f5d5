"""Stage 3 client throughput and prompt sizes.

1. Requests/s of ``OpenAIChatClient`` against a loopback OpenAI-compatible server
   that answers after a fixed latency, at a fixed concurrency, over many
   requests; compared with the ideal ``concurrency / latency``.
2. Tokens per eligible node on the release sample (prompt and completion per
   Self-Refine round, prompt tokens estimated at 4 characters per token), and the
   projected H100-seconds per video-hour at a given total token throughput
   (vLLM's published ~6.1k tokens/s for gpt-oss-120b on one H100), next to the
   paper's ~2.35 H100-hours per video-hour.

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

from action100m.llm.clients import OpenAIChatClient
from action100m.llm.prompts import build_messages
from action100m.llm.refine import eligible_nodes
from action100m.params import PromptParams
from action100m.tree import SegmentTree

SAMPLE = Path(__file__).resolve().parents[2] / "shared/data/action100m_release_sample"
CHARS_PER_TOKEN = 4.0
PROMPT_MAX_CHARS = PromptParams().max_chars  # the default prompt budget


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


def tokens(sample: Path, rounds: int, tokens_per_s: float, completion: int) -> None:
    table = pq.read_table(sample / "sample.parquet")
    prompt_tokens, nodes, video_s = [], 0, 0.0
    for row in table.to_pylist():
        tree = SegmentTree.from_release_row(row)
        kids = tree.children()
        video_s += tree.root.duration
        for node in eligible_nodes(tree):
            messages = build_messages(tree, node, kids=kids, max_chars=PROMPT_MAX_CHARS)
            chars = sum(len(m["content"]) for m in messages)
            prompt_tokens.append(chars / CHARS_PER_TOKEN)
            nodes += 1
    mean_prompt = sum(prompt_tokens) / nodes
    # Round k re-sends the conversation plus k-1 drafts and refine turns.
    per_node = sum(
        mean_prompt + k * (completion + 80) + completion for k in range(rounds)
    )
    hours = video_s / 3600
    h100_s = nodes * per_node / tokens_per_s
    print(
        f"release sample: {table.num_rows} videos, {hours:.2f} h, "
        f"{nodes} eligible nodes "
        f"({nodes / hours:.0f} per video-hour)"
    )
    print(
        f"  round-1 prompt: mean {mean_prompt:.0f} tokens, max {max(prompt_tokens):.0f}"
    )
    print(
        f"  {rounds} rounds with {completion}-token answers: "
        f"{per_node:.0f} tokens per node"
    )
    print(
        f"  at {tokens_per_s:.0f} tokens/s: {h100_s / hours / 3600:.2f} H100-hours per "
        f"video-hour (paper: ~2.35)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--tokens-per-s", type=float, default=6100)
    parser.add_argument("--completion-tokens", type=int, default=600)
    args = parser.parse_args()
    throughput(args.requests, args.concurrency, args.latency)
    if (SAMPLE / "sample.parquet").exists():
        tokens(SAMPLE, 3, args.tokens_per_s, args.completion_tokens)
    else:
        print(json.dumps({"skipped": "release sample not found"}))


if __name__ == "__main__":
    main()
