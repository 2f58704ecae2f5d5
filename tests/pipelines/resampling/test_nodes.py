"""Semantic resampling on the released sample and on controlled cluster sizes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow.parquet as pq

from action100m.core.params import ResamplingParams
from action100m.pipelines.resampling.nodes import resample_actions
from action100m.release.resampling import choose_k, sample_uniform_over_clusters


def test_resampling_the_release_sample(release_sample):
    table = pq.read_table(release_sample)
    selection, sizes, duplicates = resample_actions(table, ResamplingParams())
    annotated = {
        (row["video_uid"], n["node_id"]): n["gpt"]["action"]["brief"]
        for row in table.to_pylist()
        for n in row["nodes"]
        if n["gpt"] is not None and n["gpt"]["action"]["brief"] != "N/A"
    }
    picked = list(zip(selection.video_uid, selection.node_id, strict=True))
    assert len(picked) == len(annotated) == 718
    assert all(key in annotated for key in picked)  # only annotated nodes of the input
    assert all(
        annotated[key] == brief
        for key, brief in zip(picked, selection.action_brief, strict=True)
    )
    # Spread over clusters: the largest cluster shrinks towards the mean.
    assert sizes["k"] == 54
    assert len(set(selection.cluster)) >= 0.9 * sizes["k"]
    assert max(sizes["after"].values()) < max(sizes["before"].values())
    # Duplicate groups match an independent count.
    counts = Counter(annotated.values())
    assert duplicates["unique_texts"] == len(counts)
    assert duplicates["duplicate_groups"] == sum(c > 1 for c in counts.values())
    assert duplicates["instances_in_duplicate_groups"] == sum(
        c for c in counts.values() if c > 1
    )
    assert duplicates["top"][0]["count"] == max(counts.values())


def test_sampling_is_uniform_over_clusters_not_instances():
    clusters = np.repeat(np.arange(5), [1000, 100, 10, 5, 1])
    picked = sample_uniform_over_clusters(clusters, 50_000, seed=1)
    shares = np.bincount(clusters[picked], minlength=5) / len(picked)
    np.testing.assert_allclose(shares, 0.2, atol=0.01)
    inside = picked[clusters[picked] == 0]
    assert len(np.unique(inside)) > 900  # members are drawn uniformly too


def test_k_is_scaled_to_the_data():
    assert choose_k([1000, 10000, 100000], 548) == 54
    assert choose_k([1000, 10000, 100000], 2_000_000) == 100000
    assert choose_k([1000, 10000, 100000], 50_000) == 1000
    assert choose_k([1000], 3) == 1
