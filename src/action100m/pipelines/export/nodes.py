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
    segment_trees: PartitionLoaders,
    captions: PartitionLoaders,
    video_manifest: list[dict[str, Any]],
) -> dict[str, Callable[[], Any]]:
    """Each manifest video's tree, with its captions, in the release JSON layout.

    Args:
        segment_trees: Loaders of the per-video trees.
        captions: Loaders of the per-video captions (videos without any keep null
            caption fields).
        video_manifest: Usable videos of this run.

    Returns:
        ``video_uid -> callable`` giving the release JSON or the video's failure.
    """

    def convert(uid: str) -> Any:
        data = segment_trees[uid]()
        if isinstance(data, VideoFailure):
            return data
        tree = SegmentTree.from_dict(data)
        if uid in captions:
            video_captions = captions[uid]()
            if isinstance(video_captions, VideoFailure):
                return video_captions
            try:
                tree.update_nodes(video_captions["captions"])
            except KeyError as exc:
                return VideoFailure(
                    uid,
                    "export",
                    f"captions do not match the segment tree ({exc}): rerun captioning",
                )
        return tree.to_release_json()

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
    captions: PartitionLoaders,
    video_manifest: list[dict[str, Any]],
    ingest_errors: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Every video of this run without a tree, and every node missing a field.

    Args:
        release_trees: Loaders of the per-video release JSON (and failures).
        captions: Loaders of the per-video captions (with per-node errors).
        video_manifest: Usable videos of this run.
        ingest_errors: Videos rejected by ingest.

    Returns:
        Error records (``video_uid``, ``stage``, ``reason``, ``source``; node
        errors also ``node_id`` and ``field``).
    """
    errors = list(ingest_errors)
    for video in video_manifest:
        uid = video["video_uid"]
        if uid in captions and uid not in captions.failed:
            errors += [
                {"video_uid": uid, "stage": "captioning", "source": video["path"], **e}
                for e in captions[uid]().get("errors", [])
            ]
        if uid in release_trees.failed:
            errors.append(release_trees[uid]().to_dict())
        elif uid not in release_trees:
            errors.append(
                VideoFailure(uid, "export", "no segment tree", video["path"]).to_dict()
            )
    logger.info("export: %d videos with errors", len(errors))
    return errors
