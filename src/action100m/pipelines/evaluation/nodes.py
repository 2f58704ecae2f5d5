"""Evaluation: quality metrics for MLflow, a summary file and the run's index page."""

from __future__ import annotations

import logging
from typing import Any

from action100m.core.params import SegmentationParams
from action100m.core.tree import SegmentTree
from action100m.datasets import PartitionLoaders
from action100m.release.quality import ReleaseMetrics, cut_metrics, refine_metrics
from action100m.release.run_index import RunIndex, video_entry
from action100m.release.shards import ReleaseSource, release_rows

logger = logging.getLogger(__name__)


def evaluate_run(
    release_parquet: ReleaseSource,
    annotations: PartitionLoaders,
    ground_truth_cuts: PartitionLoaders,
    video_manifest: list[dict[str, Any]],
    errors_table: list[dict[str, Any]],
    segmentation: SegmentationParams,
) -> tuple[dict[str, Any], dict[str, Any], str, dict[str, Any]]:
    """Quality metrics of this run's release file and intermediate records.

    One pass over the release shards, a row group at a time: each row feeds
    the statistics, the invariant check, the boundary metrics and the index page.

    Args:
        release_parquet: The run's release (shards, a file or a table).
        annotations: Stage 3 partitions (every Self-Refine round).
        ground_truth_cuts: ``<uid>.cuts.json`` files (``cut_times``), if any.
        video_manifest: Usable videos of this run.
        errors_table: Failed videos and nodes.
        segmentation: Segmentation parameters (the shortest leaf allowed).

    Returns:
        MLflow metrics (``name -> {value, step}``), a summary dict, the run
        index's summary page (``index.html``) and its listing pages (``page name
        -> callable``, rendered as they are saved to ``index/``).
    """
    durations = {v["video_uid"]: v["duration"] for v in video_manifest}
    release = ReleaseMetrics(segmentation.tree.min_segment_s)
    cut_rows = []
    index = RunIndex(errors_table, {})
    for row in release_rows(release_parquet):
        uid = row["video_uid"]
        tree = SegmentTree.from_release_row(row)
        release.add(row, tree)
        index.add(video_entry(row, durations.get(uid, tree.root.end)))
        if uid in ground_truth_cuts and uid not in ground_truth_cuts.failed:
            cuts = ground_truth_cuts[uid]().get("cut_times", [])
            if cuts:
                cut_rows.append(cut_metrics(tree, cuts))
    metrics = release.result()
    metrics["video_hours"] = sum(durations.values()) / 3600
    metrics["failed_videos"] = sum("node_id" not in e for e in errors_table)
    metrics["failed_nodes"] = sum("node_id" in e for e in errors_table)
    metrics.update(
        refine_metrics(
            annotations[u]()
            for u in durations
            if u in annotations and u not in annotations.failed
        )
    )
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
    index.metrics = metrics
    return mlflow_metrics, summary, index.summary_page(), index.listing_pages()
