"""Resampling (paper §5.4): balance the action vocabulary of a release file."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from action100m.core.params import ResamplingParams
from action100m.release.resampling import (
    action_instances,
    choose_k,
    cluster_embeddings,
    duplicate_stats,
    load_sentence_encoder,
    sample_uniform_over_clusters,
)
from action100m.release.shards import ReleaseSource

logger = logging.getLogger(__name__)


def resample_actions(
    resampling_input: ReleaseSource, params: ResamplingParams
) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any]]:
    """Cluster the distinct action descriptions and sample uniformly over clusters.

    Args:
        resampling_input: A release (shards, a file or a table).
        params: Resampling parameters (embedding model, k candidates, size, seed).

    Returns:
        The selection (``video_uid``, ``node_id``, ``cluster``, ``action_brief``),
        cluster sizes before and after sampling, and duplicate-group statistics.
    """
    instances = action_instances(resampling_input, include_na=params.include_na)
    texts = [row["action_brief"] for row in instances]
    duplicates = duplicate_stats(texts, top=20)
    unique = sorted(set(texts))
    if not unique:
        logger.warning("resampling: no annotated nodes in the input")
        empty = pd.DataFrame(
            columns=["video_uid", "node_id", "cluster", "action_brief"]
        )
        return empty, {"k": 0, "before": {}, "after": {}}, duplicates
    encoder = load_sentence_encoder(params.embedding_model, params.device)
    embeddings = encoder.encode(
        unique,
        batch_size=params.batch_size,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    k = choose_k(params.k_candidates, len(unique), params.texts_per_cluster)
    labels = cluster_embeddings(embeddings, k, seed=params.seed)
    cluster_of = dict(zip(unique, labels.tolist(), strict=True))
    instance_clusters = np.array([cluster_of[t] for t in texts])
    size = params.target_size or len(instances)
    chosen = sample_uniform_over_clusters(instance_clusters, size, seed=params.seed)
    selection = pd.DataFrame(
        {
            "video_uid": [instances[i]["video_uid"] for i in chosen],
            "node_id": [instances[i]["node_id"] for i in chosen],
            "cluster": instance_clusters[chosen].astype(np.int64),
            "action_brief": [texts[i] for i in chosen],
        }
    )
    before = np.bincount(instance_clusters, minlength=k)
    after = np.bincount(instance_clusters[chosen], minlength=k)
    sizes = {
        "k": int(k),
        "embedding_model": params.embedding_model,
        "before": {str(c): int(n) for c, n in enumerate(before) if n},
        "after": {str(c): int(n) for c, n in enumerate(after) if n},
    }
    logger.info(
        "resampling: %d instances, %d unique texts, k=%d, %d sampled",
        len(texts),
        len(unique),
        k,
        size,
    )
    return selection, sizes, duplicates
