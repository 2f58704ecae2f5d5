"""Peak memory of ``stats`` and the evaluation on a large synthetic release table.

Writes a release-schema parquet of 20,000 videos (31 nodes each, captions on
every node, ``gpt`` on the internal nodes), then measures, each in a fresh
process, the peak RSS of

- reading the table (what the catalog's ``ReleaseParquetDataset`` does);
- reading it and computing ``action100m stats`` (one streaming pass);
- reading it and running the evaluation node (statistics, invariants, index page);
- reading it and turning it into Python rows at once (``to_pylist``), the way
  the evaluation used to.

Goal: streaming within 2x of reading the table.

    .venv/bin/python -m benchmarks.bench_stats_memory [--videos 20000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from action100m.core.schema import RELEASE_SCHEMA
from action100m.core.tree import make_node_id

WORDS = (
    "person hand table knife onion board pan stir cut pour water bowl slowly "
    "then picks places turns camera kitchen wooden bright light left right"
).split()


def _text(rng_state: int, words: int) -> str:
    return " ".join(WORDS[(rng_state * 7 + i * 13) % len(WORDS)] for i in range(words))


def _row(index: int, depth: int = 4) -> dict:
    uid = f"video{index:06d}"
    duration = 60.0 + index % 240
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


def write_table(path: Path, videos: int, chunk: int = 1000) -> None:
    with pq.ParquetWriter(path, RELEASE_SCHEMA) as writer:
        for first in range(0, videos, chunk):
            rows = [_row(i) for i in range(first, min(first + chunk, videos))]
            writer.write_table(pa.Table.from_pylist(rows, schema=RELEASE_SCHEMA))


CHILD = """
import json, resource, sys
import pyarrow.parquet as pq
from action100m.datasets import PartitionLoaders
from action100m.pipelines.evaluation.nodes import evaluate_run
from action100m.release.stats import compute_stats
path, what = sys.argv[1], sys.argv[2]
table = pq.read_table(path)
if what == "stats":
    compute_stats(table)
elif what == "evaluation":
    manifest = [{"video_uid": u, "duration": 60.0}
                for u in table.column("video_uid").to_pylist()]
    evaluate_run(table, PartitionLoaders(), PartitionLoaders(), manifest, [])
elif what == "to_pylist":
    rows = table.to_pylist()
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "table_mb": table.nbytes / 2**20}))
"""


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
    parser.add_argument("--videos", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "release.parquet"
        write_table(path, args.videos)
        size = path.stat().st_size / 2**20
        read = peak(path, "read")
        print(
            f"{args.videos} videos, 31 nodes each: parquet {size:.0f} MB, "
            f"in memory {read['table_mb']:.0f} MB"
        )
        print(f"  read the table:              peak RSS {read['peak_mb']:7.0f} MB")
        for what, label in (
            ("stats", "read + stats (streaming):   "),
            ("evaluation", "read + evaluation node:     "),
            ("to_pylist", "read + to_pylist (before):  "),
        ):
            found = peak(path, what)
            ratio = found["peak_mb"] / read["peak_mb"]
            goal = " (goal <= 2)" if what != "to_pylist" else ""
            print(
                f"  {label} peak RSS {found['peak_mb']:7.0f} MB, "
                f"{ratio:.2f}x reading{goal}"
            )


if __name__ == "__main__":
    main()
