"""Reannotate: Stage 3 again on an existing release (a parquet file or shards).

The input's Stage 1/2 fields are kept as they are; ``gpt`` is recomputed for
every eligible node (internal, at least 4 s) and nothing else changes. The result
goes to the pipeline's own files (``reannotated.parquet`` and
``reannotate_errors.jsonl``), never to the run's release parquet or errors table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from action100m.core.params import AggregationParams, ExecutorParams
from action100m.core.tree import SegmentTree
from action100m.datasets import PartitionLoaders
from action100m.datasets.partitions import check_partition_id
from action100m.pipelines.aggregation.nodes import annotate_trees
from action100m.release.shards import ReleaseSource, open_release
from action100m.runtime.executor import VideoWork, map_videos
from action100m.runtime.fingerprint import digest, made_by

logger = logging.getLogger(__name__)
STAGE = "reannotate"


def split_release(release_input: ReleaseSource, executor: ExecutorParams) -> VideoWork:
    """One release-JSON partition per video of the input (lazy).

    Only the ``video_uid`` column is read up front; each video's row is read
    when its partition is written (in input order, so each row group once).

    Args:
        release_input: A release (a file, shards, or a table).
        executor: Its ``on_changed`` policy (a partition from another input
            file is rewritten, or stops the run).

    Returns:
        ``video_uid -> callable`` giving the video's release JSON.
    """
    release = open_release(release_input)
    where = release.locate()
    for uid in where:
        check_partition_id(uid)

    def row(uid: str) -> dict[str, Any]:
        data = release.row_at(where[uid])
        return SegmentTree.from_release_row(data).to_release_json()

    identity = {"stage": STAGE, "settings": {}, "models": {}, "prompt": None}
    return map_videos(
        STAGE,
        {uid: (lambda uid=uid: row(uid)) for uid in where},
        lambda: lambda tree: tree,
        executor.model_copy(update={"kind": "local"}),
        made_by=lambda uid: made_by(identity, {"row": digest(row(uid))}),
    )


def annotate_release_trees(
    reannotate_trees: PartitionLoaders,
    params: AggregationParams,
    executor: ExecutorParams,
) -> VideoWork:
    """Stage 3 annotations of the input's trees (lazy, one video per file)."""
    trees = {
        uid: (lambda uid=uid: SegmentTree.from_release_json(reannotate_trees[uid]()))
        for uid in reannotate_trees
    }
    return annotate_trees(
        trees,
        params,
        executor,
        lambda uid: {"reannotate_trees": reannotate_trees.fingerprint(uid)},
    )


def merge_reannotated(
    release_input: ReleaseSource,
    reannotate_trees: PartitionLoaders,
    reannotate_annotations: PartitionLoaders,
) -> tuple[Iterator[dict[str, Any]], list[dict[str, Any]]]:
    """The input rows in input order with ``gpt`` recomputed, and the errors.

    An eligible node whose annotation failed gets a null ``gpt`` and an error
    record; a video whose annotation failed as a whole keeps its input row and
    gets an error record.

    Returns:
        Release rows (streamed into the parquet) and error records.
    """
    uids = open_release(release_input).video_uids()
    errors: list[dict[str, Any]] = []
    for uid in uids:
        if uid in reannotate_annotations.failed:
            errors.append(reannotate_annotations[uid]().to_dict())
        elif uid in reannotate_annotations:
            errors += [
                {"video_uid": uid, "stage": "aggregation", **e}
                for e in reannotate_annotations[uid]().get("errors", [])
            ]

    def rows() -> Iterator[dict[str, Any]]:
        from action100m.models.llm.refine import eligible_nodes

        for uid in uids:
            tree = SegmentTree.from_release_json(reannotate_trees[uid]())
            if (
                uid in reannotate_annotations
                and uid not in reannotate_annotations.failed
            ):
                found = reannotate_annotations[uid]()["annotations"]
                tree.update_nodes(
                    {
                        n.node_id: {"gpt": found.get(n.node_id)}
                        for n in eligible_nodes(tree)
                    }
                )
            yield tree.to_release_row()

    logger.info("reannotate: %d videos, %d errors", len(uids), len(errors))
    return rows(), errors
