"""Peak memory of the release readers as the release grows.

Writes synthetic releases (trees of ``2^(depth+1) - 1`` nodes, captions on
every node, ``gpt`` on the internal nodes of at least 4 s) of each size in
``--videos`` as shards, with the export's own writer, then measures, each in a
fresh process, the peak RSS of

- ``action100m validate`` (schema and every invariant, a row group at a time);
- ``action100m stats``;
- the evaluation node (statistics, invariants, index page);
- reading the whole release into one Arrow table (what every reader did before
  it streamed, before turning rows into Python objects), for contrast.

Goal: the streaming readers' peak flat in the number of videos (last/first
near 1.0), while the whole table grows with it.

    .venv/bin/python -m benchmarks.bench_stats_memory [--videos 1000 4000] [--depth 8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from action100m.core.tree import make_node_id

WORDS = (
    "person hand table knife onion board pan stir cut pour water bowl slowly "
    "then picks places turns camera kitchen wooden bright light left right"
).split()


def _text(rng_state: int, words: int) -> str:
    return " ".join(WORDS[(rng_state * 7 + i * 13) % len(WORDS)] for i in range(words))


def _row(index: int, depth: int = 4) -> dict:
    uid = f"video{index:06d}"
    duration = 0.6 * 2**depth + index % 240  # leaves of at least 0.6 s
    nodes, spans = [], [(None, 0, 0.0, duration)]
    while spans:
        parent, level, start, end = spans.pop(0)
        node_id = make_node_id(uid, start, end)
        leaf = level == depth
        long_internal = not leaf and end - start >= 4.0
        gpt = {
            "summary": {"brief": _text(index, 19), "detailed": _text(index + 1, 95)},
            "action": {
                "brief": _text(index, 3),
                "detailed": _text(index + 2, 28),
                "actor": "a person",
            },
        }
        nodes.append(
            {
                "node_id": node_id,
                "parent_id": parent,
                "level": level,
                "start": start,
                "end": end,
                "plm_action": _text(index, 3),
                "plm_caption": _text(index + level, 60),
                "llama3_caption": _text(index, 80) if leaf else None,
                "gpt": gpt if long_internal else None,
            }
        )
        if not leaf:
            middle = round((start + end) / 2, 2)
            spans += [
                (node_id, level + 1, start, middle),
                (node_id, level + 1, middle, end),
            ]
    metadata = {
        "title": f"Video {index}",
        "description": _text(index, 40),
        "view_count": index,
        "like_count": index // 10,
        "duration": int(duration),
        "upload_date": "20240101",
        "transcript": [{"time": str(t), "text": _text(t, 12)} for t in range(0, 60, 5)],
    }
    return {"video_uid": uid, "metadata": metadata, "nodes": nodes}


def write_shards(folder: Path, videos: int, depth: int, shard_rows: int) -> None:
    """The release of ``videos`` synthetic videos, written by the export's own
    shard writer (``ReleaseShardsDataset``), one row at a time."""
    from action100m.datasets import ReleaseShardsDataset
    from action100m.release.shards import ReleaseRows

    ReleaseShardsDataset(path=str(folder / "data")).save(
        ReleaseRows(
            videos=[(f"video{i:06d}", "synthetic") for i in range(videos)],
            row=lambda uid: _row(int(uid[5:]), depth),
            shard_rows=shard_rows,
            shard_bytes=2**40,
        )
    )


CHILD = """
import json, resource, sys
from action100m.datasets import PartitionLoaders
from action100m.core.params import SegmentationParams
from action100m.pipelines.evaluation.nodes import evaluate_run
from action100m.release.shards import open_release, read_release
from action100m.release.stats import compute_stats
from action100m.release.validation import check_release
path, what = sys.argv[1], sys.argv[2]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if what == "validate":
    assert not check_release(path).problems
elif what == "stats":
    compute_stats(path)
elif what == "evaluation":
    manifest = [{"video_uid": u, "duration": 60.0}
                for u in open_release(path).video_uids()]
    evaluate_run(path, PartitionLoaders(), PartitionLoaders(), manifest, [],
                 SegmentationParams())
elif what == "read":
    table = read_release(path)
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "imports_mb": base}))
"""
READERS = (
    ("validate", "action100m validate (streaming)"),
    ("stats", "action100m stats (streaming)"),
    ("evaluation", "evaluation node (streaming)"),
    ("read", "the whole table in Arrow"),
)


def peak(path: Path, what: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), what],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--videos", type=int, nargs="+", default=[1000, 4000], help="release sizes"
    )
    parser.add_argument(
        "--depth", type=int, default=8, help="tree depth (2^(depth+1) - 1 nodes)"
    )
    parser.add_argument("--shard-rows", type=int, default=256)
    args = parser.parse_args()
    nodes = 2 ** (args.depth + 1) - 1
    found: dict[str, list[float]] = {what: [] for what, _ in READERS}
    with tempfile.TemporaryDirectory() as folder:
        for videos in args.videos:
            out = Path(folder) / str(videos)
            started = time.perf_counter()
            write_shards(out, videos, args.depth, args.shard_rows)
            size = sum(p.stat().st_size for p in (out / "data").glob("*.parquet"))
            print(
                f"{videos} videos of {nodes} nodes: {size / 2**20:.0f} MB in "
                f"{len(list((out / 'data').glob('*.parquet')))} shards "
                f"(written in {time.perf_counter() - started:.0f} s)"
            )
            for what, _ in READERS:
                result = peak(out, what)
                found[what].append(result["peak_mb"])
            print(f"  imports alone: peak RSS {result['imports_mb']:.0f} MB")
    sizes = " / ".join(f"{v:,}" for v in args.videos)
    print(f"\npeak RSS (MB) at {sizes} videos, last/first:")
    for what, label in READERS:
        peaks = found[what]
        shown = " / ".join(f"{p:7.0f}" for p in peaks)
        print(f"  {label:<34} {shown}   {peaks[-1] / peaks[0]:.2f}x")


if __name__ == "__main__":
    main()
