"""Reannotate: Stage 3 again on an existing release-schema parquet.

The input's Stage 1/2 fields are kept as they are; ``gpt`` is recomputed for
every eligible node (internal, at least 4 s) and nothing else changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from action100m.datasets import PartitionLoaders
from action100m.datasets.partitions import check_partition_id
from action100m.params import AggregationParams
from action100m.pipelines.aggregation.nodes import annotate_videos
from action100m.tree import SegmentTree

logger = logging.getLogger(__name__)
STAGE = "reannotate"


def split_release(release_input: pa.Table) -> dict[str, Callable[[], Any]]:
    """One release-JSON partition per video of the input (lazy).

    Args:
        release_input: A release-schema table.

    Returns:
        ``video_uid -> callable`` giving the video's release JSON.
    """
    uids = release_input.column("video_uid").to_pylist()
    for uid in uids:
        check_partition_id(uid)

    def row(index: int) -> dict[str, Any]:
        data = release_input.slice(index, 1).to_pylist()[0]
        return SegmentTree.from_release_row(data).to_release_json()

    return {uid: (lambda i=i: row(i)) for i, uid in enumerate(uids)}


def annotate_release_trees(
    reannotate_trees: PartitionLoaders, params: AggregationParams
) -> dict[str, Callable[[], Any]]:
    """Stage 3 annotations of the input's trees (lazy, one video per file)."""
    trees = {
        uid: (lambda uid=uid: SegmentTree.from_release_json(reannotate_trees[uid]()))
        for uid in reannotate_trees
    }
    return annotate_videos(trees, params)


def merge_reannotated(
    release_input: pa.Table,
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
    uids = release_input.column("video_uid").to_pylist()
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
        from action100m.llm.refine import eligible_nodes

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
