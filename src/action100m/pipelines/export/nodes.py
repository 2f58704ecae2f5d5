"""Export: per-video release JSON, the release parquet and the errors table."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from action100m.core.errors import VideoFailure
from action100m.core.params import (
    AggregationParams,
    CaptioningParams,
    ExportParams,
    SegmentationParams,
)
from action100m.core.tree import SegmentTree
from action100m.datasets import PartitionLoaders
from action100m.release.assembly import assemble_tree
from action100m.release.dataset_card import build_dataset_card, run_models
from action100m.release.fiftyone_format import VideoFrames, video_sample
from action100m.release.viewer import relative_link, render_html, render_timeline_png

logger = logging.getLogger(__name__)
STAGE = "export"


def export_video_trees(
    segment_trees: PartitionLoaders,
    captions: PartitionLoaders,
    annotations: PartitionLoaders,
    video_manifest: list[dict[str, Any]],
) -> dict[str, Callable[[], Any]]:
    """Each manifest video's full tree in the release's per-video JSON layout (lazy).

    Args:
        segment_trees: Stage 1 partitions.
        captions: Stage 2 partitions (videos without any keep null captions).
        annotations: Stage 3 partitions (videos without any keep null ``gpt``).
        video_manifest: Usable videos of this run.

    Returns:
        ``video_uid -> callable`` giving the release JSON or the video's failure.
    """

    def convert(video: dict[str, Any]) -> Any:
        tree = assemble_tree(video, STAGE, segment_trees, captions, annotations)
        return tree if isinstance(tree, VideoFailure) else tree.to_release_json()

    return {
        v["video_uid"]: (lambda v=v: convert(v))
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
    uids = [v["video_uid"] for v in _exported(release_trees, video_manifest)]
    logger.info("export: %d videos in the release parquet", len(uids))
    return (
        SegmentTree.from_release_json(release_trees[uid]()).to_release_row()
        for uid in uids
    )


def _exported(
    release_trees: PartitionLoaders, video_manifest: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    return [
        v
        for v in video_manifest
        if v["video_uid"] in release_trees
        and v["video_uid"] not in release_trees.failed
    ]


def fiftyone_samples(
    release_trees: PartitionLoaders, video_manifest: list[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    """FiftyOne video samples of the exported trees, one at a time.

    Args:
        release_trees: Loaders of the per-video release JSON.
        video_manifest: Usable videos of this run (path, fps, frame count).

    Returns:
        An iterator of samples, each with a ``TemporalDetections`` field per
        ``gpt`` field (streamed into ``samples.json``).
    """
    return (
        video_sample(
            SegmentTree.from_release_json(release_trees[v["video_uid"]]()),
            VideoFrames.from_probe(v["path"], v),
        )
        for v in _exported(release_trees, video_manifest)
    )


def write_dataset_card(
    release_parquet: pa.Table,
    segmentation: SegmentationParams,
    captioning: CaptioningParams,
    aggregation: AggregationParams,
    export: ExportParams,
) -> str:
    """The dataset card published beside the FiftyOne export.

    Args:
        release_parquet: The run's release table (the exported videos).
        segmentation: Stage 1 parameters (the embedder and its revision).
        captioning: Stage 2 parameters (both captioners).
        aggregation: Stage 3 parameters (the LLM, Self-Refine rounds).
        export: The card's licence, name, tags and hub repository.

    Returns:
        ``README.md`` text: front matter, fields, models and statistics.
    """
    params = {
        "segmentation": segmentation.model_dump(),
        "captioning": captioning.model_dump(),
        "aggregation": aggregation.model_dump(),
    }
    return build_dataset_card(release_parquet, export.card, run_models(params))


def render_views(
    release_trees: PartitionLoaders,
    video_manifest: list[dict[str, Any]],
    output_dir: str,
) -> tuple[dict[str, Callable[[], Any]], dict[str, Callable[[], Any]]]:
    """An HTML viewer and a timeline PNG per exported video (lazy).

    Args:
        release_trees: Loaders of the per-video release JSON.
        video_manifest: Usable videos of this run.
        output_dir: The run's output folder (the viewer links the video relative
            to ``<output_dir>/viewer``).

    Returns:
        ``video_uid -> callable`` for the pages and for the images.
    """
    videos = {v["video_uid"]: v for v in _exported(release_trees, video_manifest)}

    def tree(uid: str) -> SegmentTree:
        return SegmentTree.from_release_json(release_trees[uid]())

    def page(uid: str) -> str:
        link = relative_link(videos[uid]["path"], os.path.join(output_dir, "viewer"))
        return render_html(tree(uid), link)

    pages = {uid: (lambda uid=uid: page(uid)) for uid in videos}
    images = {uid: (lambda uid=uid: render_timeline_png(tree(uid))) for uid in videos}
    return pages, images


def node_errors(
    stage: str, partitions: PartitionLoaders, video: dict[str, Any]
) -> list[dict[str, Any]]:
    """The per-node errors a stage recorded for one video."""
    uid = video["video_uid"]
    if uid not in partitions or uid in partitions.failed:
        return []
    return [
        {"video_uid": uid, "stage": stage, "source": video.get("path"), **error}
        for error in partitions[uid]().get("errors", [])
    ]


def collect_errors(
    release_trees: PartitionLoaders,
    captions: PartitionLoaders,
    annotations: PartitionLoaders,
    video_manifest: list[dict[str, Any]],
    ingest_errors: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Every video of this run without a tree, and every node missing a field.

    Args:
        release_trees: Loaders of the per-video release JSON (and failures).
        captions: Stage 2 partitions (with per-node errors).
        annotations: Stage 3 partitions (with per-node errors).
        video_manifest: Usable videos of this run.
        ingest_errors: Videos rejected by ingest.

    Returns:
        Error records (``video_uid``, ``stage``, ``reason``, ``source``; node
        errors also ``node_id`` and ``field``).
    """
    errors = list(ingest_errors)
    for video in video_manifest:
        uid = video["video_uid"]
        errors += node_errors("captioning", captions, video)
        errors += node_errors("aggregation", annotations, video)
        if uid in release_trees.failed:
            errors.append(release_trees[uid]().to_dict())
        elif uid not in release_trees:
            errors.append(
                VideoFailure(uid, STAGE, "no segment tree", video["path"]).to_dict()
            )
    logger.info("export: %d errors", len(errors))
    return errors
