"""Ward agglomerative clustering of frames under a temporal connectivity constraint.

With each frame connected only to its immediate neighbours, every cluster is a
contiguous run of frames with at most two neighbours, so the merge tree can be
built with a heap of adjacent-pair distances in ``O(N log N + N D)``. The result
is the same merge tree as scikit-learn's ``ward_tree`` with a chain connectivity
(the tests check this), several times faster on long videos.
"""

from __future__ import annotations

import heapq
import math

import numpy as np


def _ward_distance(sums: np.ndarray, counts: list[float], a: int, b: int) -> float:
    """Ward linkage distance (scipy's convention) between clusters a and b."""
    na, nb = counts[a], counts[b]
    diff = sums[a] * (1.0 / na) - sums[b] * (1.0 / nb)
    return math.sqrt(2.0 * na * nb / (na + nb) * float(diff.dot(diff)))


def _neighbour_gaps(x: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Euclidean distance between consecutive rows, in bounded-memory chunks."""
    gaps = np.empty(len(x) - 1)
    for i in range(0, len(x) - 1, chunk):
        diff = x[i + 1 : i + 1 + chunk] - x[i : i + chunk][: len(x) - 1 - i]
        gaps[i : i + len(diff)] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return gaps


def temporal_ward_linkage(embeddings: np.ndarray) -> np.ndarray:
    """The full Ward merge tree of frames where only neighbours may merge.

    Args:
        embeddings: ``(N, D)`` per-frame vectors in temporal order.

    Returns:
        A scipy-style linkage matrix ``(N-1, 4)``: the two merged cluster ids
        (frames are ``0..N-1``, merge ``i`` creates ``N+i``; left cluster first),
        the Ward distance and the new cluster's size.
    """
    # A cluster lives in the slot of its first frame; float64 sums.
    sums = np.array(embeddings, dtype=np.float64, copy=True)
    n = len(sums)
    linkage = np.zeros((max(n - 1, 0), 4))
    if n < 2:
        return linkage
    counts = [1.0] * n
    cluster_id = list(range(n))
    next_slot = list(range(1, n + 1))  # n = no right neighbour
    prev_slot = list(range(-1, n - 1))  # -1 = no left neighbour
    version = [0] * n
    heap = [(d, i, 0) for i, d in enumerate(_neighbour_gaps(sums).tolist())]
    heapq.heapify(heap)
    for k in range(n - 1):
        while True:
            dist, left, ver = heapq.heappop(heap)
            if version[left] == ver and next_slot[left] < n:
                break
        right = next_slot[left]
        sums[left] += sums[right]
        counts[left] += counts[right]
        linkage[k] = (cluster_id[left], cluster_id[right], dist, counts[left])
        cluster_id[left] = n + k
        version[right] = -1  # the right slot is gone
        after = next_slot[right]
        next_slot[left] = after
        version[left] += 1
        if after < n:
            prev_slot[after] = left
            heapq.heappush(
                heap, (_ward_distance(sums, counts, left, after), left, version[left])
            )
        before = prev_slot[left]
        if before >= 0:
            version[before] += 1
            heapq.heappush(
                heap,
                (_ward_distance(sums, counts, before, left), before, version[before]),
            )
    return linkage
