"""Stage 2 with served captioners: one video at a time vs several in flight.

Runs the captioning node (``caption_trees``, the local executor, both captioners
on the ``openai`` backend) over the same videos and trees twice against a
loopback OpenAI-compatible server that answers every request after a fixed
latency: with ``captioning.videos_in_flight`` 1 and N. Trees have the release
sample's density (84.3 nodes and 42.3 leaves per minute). Prints wall time,
requests per second and the ratio; exits 1 if any request failed (a failed
request is not throughput).

    .venv/bin/python -m benchmarks.bench_served_captioning [--videos 6]
        [--seconds 20] [--latency 1.0] [--in-flight 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from action100m.core.params import CaptioningParams, ExecutorParams
from action100m.datasets import PartitionLoaders
from action100m.media.video import VideoSource, probe_video
from action100m.models.work import RUN_WORK
from action100m.pipelines.captioning.nodes import caption_trees
from benchmarks._footage import long_video
from benchmarks.gpu_cost import synthetic_tree


def served_params(base_url: str, in_flight: int) -> CaptioningParams:
    served = {"backend": "openai", "base_url": base_url, "model_id": "bench"}
    return CaptioningParams(
        plm={**served, "caption_prompt": "Describe.", "action_prompt": "Action?"},
        llama={**served, "prompt": "Describe this image."},
        videos_in_flight=in_flight,
    )


def caption_all(manifest, trees, base_url: str, in_flight: int) -> tuple[float, int]:
    """Seconds to caption every video (saved in order) and the requests sent."""
    RUN_WORK.reset()
    work = caption_trees(
        PartitionLoaders({uid: (lambda t=t: t) for uid, t in trees.items()}),
        manifest,
        [VideoSource(v["video_uid"], v["path"]) for v in manifest],
        served_params(base_url, in_flight),
        ExecutorParams(),
    )
    start = time.perf_counter()
    failed = 0
    for uid in trees:
        result = work[uid]()
        if not isinstance(result, dict):
            raise SystemExit(f"{uid}: the video failed: {result}")
        failed += len(result["errors"])
    seconds = time.perf_counter() - start
    if failed:
        raise SystemExit(f"{failed} caption requests failed: not throughput")
    calls = sum(RUN_WORK.totals[role].calls for role in ("plm", "llama"))
    return seconds, calls


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--latency", type=float, default=1.0, help="server, seconds")
    parser.add_argument("--in-flight", type=int, default=4)
    args = parser.parse_args()

    folder = Path(tempfile.gettempdir()) / "action100m_bench_served"
    folder.mkdir(exist_ok=True)
    path = long_video(str(folder / f"video_{args.seconds:g}s.mp4"), args.seconds)
    manifest, trees = [], {}
    for i in range(args.videos):
        uid = f"video_{i}"
        info = probe_video(VideoSource(uid, path)).to_dict()
        manifest.append({"video_uid": uid, "path": path, "metadata": {}, **info})
        trees[uid] = synthetic_tree(uid, info["duration"]).to_dict()
    nodes = sum(len(t["nodes"]) for t in trees.values())

    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._latency_server", "--latency",
         str(args.latency)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        base_url = server.stdout.readline().strip()
        one, calls_one = caption_all(manifest, trees, base_url, 1)
        many, calls_many = caption_all(manifest, trees, base_url, args.in_flight)
    finally:
        server.terminate()
        server.wait()
    if calls_one != calls_many:
        raise SystemExit(f"requests differ: {calls_one} vs {calls_many}")
    print(  # noqa: T201
        f"{args.videos} videos of {args.seconds:g} s, {nodes} nodes, "
        f"{calls_one} requests, server latency {args.latency:g} s, "
        f"max_concurrency 16 per captioner\n"
        f"  videos_in_flight 1: {one:6.1f} s  {calls_one / one:6.1f} requests/s\n"
        f"  videos_in_flight {args.in_flight}: {many:6.1f} s  "
        f"{calls_many / many:6.1f} requests/s\n"
        f"  time {args.in_flight} / 1: {many / one:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
