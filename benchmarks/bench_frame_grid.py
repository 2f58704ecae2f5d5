"""How many PerceptionLM frames a per-video frame cache would encode once.

PerceptionLM encodes and pools every frame on its own, so a frame that two nodes
both sample (a parent and its child) could be encoded once and its features
reused, with identical results. Whether that happens depends on the sampling:

- ``centres`` (today): the centres of 32 equal slices of each node, each read as
  the nearest decoded frame (``--fps``). A parent's and a child's centres rarely
  land on the same frame.
- ``grid``: every node takes its 32 frames from one per-video grid of step
  ``g`` = the largest power-of-two multiple of the frame period not above the
  node's own slice, starting at time 0, so a parent's grid points are points of
  its children's grids. The times move by at most half a slice.

For the release sample's real trees (or ``--tree-json``), prints per sampling: frames
sampled, distinct frames (what a cache keyed by frame index encodes), the share
saved, and the largest and mean shift of a sampled time from today's centre in
slice units. Frames only: it runs no model. What the shift does to captions needs
the real model and is not measured here.

    PYTHONPATH=src python -m benchmarks.bench_frame_grid [--fps 30] [--frames 32]
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

from tests.conftest import RELEASE_SAMPLE


def centre_frames(start: float, end: float, count: int, fps: float) -> list[int]:
    step = (end - start) / count
    return [round((start + (i + 0.5) * step) * fps) for i in range(count)]


def grid_frames(start: float, end: float, count: int, fps: float) -> list[int]:
    """``count`` frames on the shared grid, spread over the node."""
    slice_frames = max(1.0, (end - start) * fps / count)
    step = 2 ** math.floor(math.log2(slice_frames))  # frames, a power of two
    first = math.ceil(start * fps / step)
    last = max(first, math.floor(end * fps / step) - 1)
    points = np.arange(first, last + 1) * step
    picks = np.linspace(0, len(points) - 1, count).round().astype(int)
    return [int(points[p]) for p in picks]


def measure(trees: list[list[tuple[float, float]]], count: int, fps: float) -> dict:
    report = {}
    for name, sample in (("centres", centre_frames), ("grid", grid_frames)):
        sampled = distinct = 0
        shifts = []
        for spans in trees:
            seen: set[int] = set()
            for start, end in spans:
                frames = sample(start, end, count, fps)
                centres = centre_frames(start, end, count, fps)
                slice_frames = max(1e-9, (end - start) * fps / count)
                shifts += [abs(a - b) / slice_frames for a, b in zip(frames, centres)]
                sampled += len(frames)
                seen.update(frames)
            distinct += len(seen)
        report[name] = {
            "frames_sampled": sampled,
            "distinct_frames": distinct,
            "saved": 1 - distinct / sampled,
            "max_shift_slices": float(np.max(shifts)),
            "mean_shift_slices": float(np.mean(shifts)),
        }
    return report


def release_trees(path: str) -> list[list[tuple[float, float]]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["nodes"])
    return [
        [(n["start"], n["end"]) for n in row["nodes"]] for row in table.to_pylist()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--release", default=str(RELEASE_SAMPLE / "sample.parquet"))
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    trees = release_trees(args.release)
    report = {
        "videos": len(trees),
        "nodes": sum(len(t) for t in trees),
        "fps": args.fps,
        **measure(trees, args.frames, args.fps),
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
