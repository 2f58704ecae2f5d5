"""Tree build for a 1-hour video's embeddings vs scikit-learn's connectivity Ward alone.

27,000 sampled frames (1 hour at 30 fps, 1 frame in 4) x 1408 dims (ViT-g).
Ours = temporal Ward linkage + conversion to the segment tree; the baseline is
``sklearn.cluster.ward_tree`` with the same chain connectivity and nothing else.

    .venv/bin/python benchmarks/bench_tree.py [--frames 27000 --dim 1408]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.cluster import ward_tree

from action100m.core.clustering import temporal_ward_linkage
from action100m.core.tree import SegmentTree


def chain(n: int):
    from scipy import sparse

    ones = np.ones(n - 1)
    return sparse.diags([ones, ones], [-1, 1], shape=(n, n), format="csr")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=27_000)
    parser.add_argument("--dim", type=int, default=1408)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    # Smoothly drifting features with a jump every ~450 frames (shots).
    steps = rng.normal(0, 0.05, (args.frames, args.dim)).astype(np.float32)
    jumps = rng.random(args.frames) < 1 / 450
    steps[jumps] += rng.normal(0, 3, (int(jumps.sum()), args.dim)).astype(np.float32)
    x = np.cumsum(steps, axis=0, dtype=np.float32)
    times = np.arange(args.frames) * (4 / 30)

    start = time.perf_counter()
    ward_tree(x, connectivity=chain(args.frames), return_distance=True)
    sklearn_s = time.perf_counter() - start

    start = time.perf_counter()
    linkage = temporal_ward_linkage(x)
    tree = SegmentTree.from_merge_tree("bench", linkage, times, times[-1] + 0.1)
    ours_s = time.perf_counter() - start

    print(f"embeddings: {args.frames} x {args.dim} float32")
    print(f"sklearn ward_tree (connectivity) alone: {sklearn_s:.2f} s")
    print(f"ours, linkage + segment tree ({len(tree.nodes)} nodes): {ours_s:.2f} s")
    print(f"ratio ours/sklearn: {ours_s / sklearn_s:.3f}  (goal <= 1.1, and <= 2 s)")


if __name__ == "__main__":
    main()
