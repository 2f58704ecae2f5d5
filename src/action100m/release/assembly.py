"""Put a video's tree together from what each stage wrote for it."""

from __future__ import annotations

from typing import Any

from action100m.core.errors import VideoFailure
from action100m.core.tree import SegmentTree
from action100m.datasets import PartitionLoaders, load_upstream


def assemble_tree(
    video: dict[str, Any],
    stage: str,
    segment_trees: PartitionLoaders,
    captions: PartitionLoaders | None = None,
    annotations: PartitionLoaders | None = None,
) -> SegmentTree | VideoFailure:
    """The video's segment tree with its captions and ``gpt`` fields, if any.

    A stage that has no partition for the video leaves its fields null; a stage
    that recorded a failure for it makes the whole video that failure.

    Args:
        video: The manifest row.
        stage: The stage asking (named in new failures).
        segment_trees: Stage 1 partitions.
        captions: Stage 2 partitions (``captions``: node id -> fields).
        annotations: Stage 3 partitions (``annotations``: node id -> gpt).

    Returns:
        The tree, or the failure to pass on.
    """
    data = load_upstream(segment_trees, video, stage, "segment tree")
    if isinstance(data, VideoFailure):
        return data
    tree = SegmentTree.from_dict(data)
    for loaders, key, wrap in (
        (captions, "captions", lambda fields: fields),
        (annotations, "annotations", lambda gpt: {"gpt": gpt}),
    ):
        if loaders is None or video["video_uid"] not in loaders:
            continue
        part = loaders[video["video_uid"]]()
        if isinstance(part, VideoFailure):
            return part
        try:
            tree.update_nodes({nid: wrap(v) for nid, v in part[key].items()})
        except KeyError as exc:
            return VideoFailure(
                video["video_uid"],
                stage,
                f"{key} do not match the segment tree ({exc}): rerun that stage",
                video.get("path"),
            )
    return tree
