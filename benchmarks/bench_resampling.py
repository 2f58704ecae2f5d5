"""k-means + uniform-over-clusters sampling on 1M synthetic 384-d embeddings.

Goal: under 2 minutes and 4 GB on a 2-core machine. The embeddings are drawn
around random centres (a long-tailed mixture, like action descriptions); the
benchmark runs in a fresh process and reports wall time and peak RSS.

    .venv/bin/python -m benchmarks.bench_resampling [--n 1000000 --k 1000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, resource, sys, time
import numpy as np
from action100m.release.resampling import (
    cluster_embeddings, sample_uniform_over_clusters,
)
n, dim, k = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
centres = rng.normal(size=(5000, dim)).astype(np.float32)
weights = 1.0 / np.arange(1, 5001) ** 1.1
which = rng.choice(5000, size=n, p=weights / weights.sum())
x = centres[which]
for i in range(0, n, 100_000):  # float32 noise in blocks: no float64 copy of x
    block = x[i : i + 100_000]
    block += 0.3 * rng.standard_normal(block.shape, dtype=np.float32)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
labels = cluster_embeddings(x, k)
kmeans_s = time.perf_counter() - start
picked = sample_uniform_over_clusters(labels, n)
total_s = time.perf_counter() - start
sizes = np.bincount(labels, minlength=k)
print(json.dumps({"kmeans_s": kmeans_s, "total_s": total_s,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "data_mb": x.nbytes / 2**20, "after_data_mb": base,
                  "clusters_used": int((sizes > 0).sum()),
                  "largest_before": int(sizes.max()),
                  "largest_after": int(np.bincount(labels[picked]).max())}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, nargs="+", default=[1000])
    args = parser.parse_args()
    for k in args.k:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(args.n), str(args.dim), str(k)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"n={args.n} dim={args.dim} k={k}: k-means {r['kmeans_s']:.1f} s, "
            f"with sampling {r['total_s']:.1f} s (goal < 120 s); peak RSS "
            f"{r['peak_mb']:.0f} MB with {r['data_mb']:.0f} MB of embeddings, "
            f"{r['after_data_mb']:.0f} MB before clustering "
            f"(goal < 4096); {r['clusters_used']} clusters used; largest cluster "
            f"{r['largest_before']} instances, {r['largest_after']} after sampling"
        )


if __name__ == "__main__":
    main()
