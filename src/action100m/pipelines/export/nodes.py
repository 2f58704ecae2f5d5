"""Export: per-video release JSON, the release parquet and the errors table."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from action100m.datasets import PartitionLoaders
from action100m.errors import VideoFailure
from action100m.tree import SegmentTree

logger = logging.getLogger(__name__)


def export_video_trees(
    segment_trees: PartitionLoaders, video_manifest: list[dict[str, Any]]
) -> dict[str, Callable[[], Any]]:
    """Each manifest video's tree in the release's per-video JSON layout (lazy).

    Args:
        segment_trees: Loaders of the latest per-video trees.
        video_manifest: Usable videos of this run.

    Returns:
        ``video_uid -> callable`` giving the release JSON or the video's failure.
    """

    def convert(uid: str) -> Any:
        data = segment_trees[uid]()
        if isinstance(data, VideoFailure):
            return data
        return SegmentTree.from_dict(data).to_release_json()

    return {
        v["video_uid"]: (lambda uid=v["video_uid"]: convert(uid))
        for v in video_manifest
        if v["video_uid"] in segment_trees
    }


def iter_release_rows(
    release_trees: PartitionLoaders, video_manifest: list[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    """Release rows of the manifest's videos, in manifest order, one at a time.

    Args:
        release_trees: Loaders of the per-video release JSON.
        video_manifest: Usable videos of this run.

    Returns:
        An iterator of release rows (streamed into the parquet).
    """
    uids = [
        v["video_uid"]
        for v in video_manifest
        if v["video_uid"] in release_trees
        and v["video_uid"] not in release_trees.failed
    ]
    logger.info("export: %d videos in the release parquet", len(uids))
    return (
        SegmentTree.from_release_json(release_trees[uid]()).to_release_row()
        for uid in uids
    )


def collect_errors(
    release_trees: PartitionLoaders,
    video_manifest: list[dict[str, Any]],
    ingest_errors: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Every video of this run without a tree, with the stage and reason.

    Args:
        release_trees: Loaders of the per-video release JSON (and failures).
        video_manifest: Usable videos of this run.
        ingest_errors: Videos rejected by ingest.

    Returns:
        Error records (``video_uid``, ``stage``, ``reason``, ``source``).
    """
    errors = list(ingest_errors)
    for video in video_manifest:
        uid = video["video_uid"]
        if uid in release_trees.failed:
            errors.append(release_trees[uid]().to_dict())
        elif uid not in release_trees:
            errors.append(
                VideoFailure(uid, "export", "no segment tree", video["path"]).to_dict()
            )
    logger.info("export: %d videos with errors", len(errors))
    return errors
