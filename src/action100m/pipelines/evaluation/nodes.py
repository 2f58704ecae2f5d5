"""Evaluation: quality metrics of the run, for MLflow and a summary file."""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa

from action100m.datasets import PartitionLoaders
from action100m.params import SegmentationParams
from action100m.quality import cut_metrics, refine_metrics, release_metrics
from action100m.tree import SegmentTree

logger = logging.getLogger(__name__)


def evaluate_run(
    release_parquet: pa.Table,
    annotations: PartitionLoaders,
    ground_truth_cuts: PartitionLoaders,
    video_manifest: list[dict[str, Any]],
    errors_table: list[dict[str, Any]],
    segmentation: SegmentationParams,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Quality metrics of this run's release file and intermediate records.

    Args:
        release_parquet: The run's release table.
        annotations: Stage 3 partitions (every Self-Refine round).
        ground_truth_cuts: ``<uid>.cuts.json`` files (``cut_times``), if any.
        video_manifest: Usable videos of this run.
        errors_table: Failed videos and nodes.
        segmentation: Segmentation parameters (the shortest leaf allowed).

    Returns:
        MLflow metrics (``name -> {value, step}``) and a summary dict.
    """
    uids = [v["video_uid"] for v in video_manifest]
    metrics = release_metrics(release_parquet, segmentation.tree.min_segment_s)
    metrics["video_hours"] = sum(v["duration"] for v in video_manifest) / 3600
    metrics["failed_videos"] = sum("node_id" not in e for e in errors_table)
    metrics["failed_nodes"] = sum("node_id" in e for e in errors_table)
    metrics.update(
        refine_metrics(
            annotations[u]()
            for u in uids
            if u in annotations and u not in annotations.failed
        )
    )
    cut_rows = []
    for row in release_parquet.to_pylist():
        uid = row["video_uid"]
        if uid in ground_truth_cuts and uid not in ground_truth_cuts.failed:
            cuts = ground_truth_cuts[uid]().get("cut_times", [])
            if cuts:
                cut_rows.append(cut_metrics(SegmentTree.from_release_row(row), cuts))
    if cut_rows:
        for key in cut_rows[0]:
            metrics[key] = sum(r[key] for r in cut_rows) / len(cut_rows)
        metrics["videos_with_ground_truth"] = len(cut_rows)
    summary = {"metrics": metrics, "errors": errors_table}
    logger.info(
        "evaluation: invariant pass rate %s over %s videos",
        metrics["invariant_pass_rate"],
        metrics["videos"],
    )
    mlflow_metrics = {
        name: {"value": float(value), "step": 0}
        for name, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    return mlflow_metrics, summary
