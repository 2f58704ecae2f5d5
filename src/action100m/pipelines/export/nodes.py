"""Export: per-video release JSON, the release parquet and the errors table."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from action100m.core.errors import VideoFailure
from action100m.core.params import (
    AggregationParams,
    CaptioningParams,
    ExecutorParams,
    ExportParams,
    SegmentationParams,
)
from action100m.core.tree import SegmentTree
from action100m.datasets import PartitionLoaders
from action100m.release.assembly import assemble_tree
from action100m.release.dataset_card import (
    card_statistics,
    render_dataset_card,
    run_models,
)
from action100m.release.fiftyone_format import VideoFrames, video_sample
from action100m.release.shards import ReleaseRows, ReleaseSource
from action100m.release.viewer import relative_link, render_html, render_timeline_png
from action100m.runtime.executor import VideoWork, map_videos
from action100m.runtime.fingerprint import digest, made_by

logger = logging.getLogger(__name__)
STAGE = "export"
# A release tree is made from its stages' outputs alone (no settings or models).
EXPORT_IDENTITY = {"stage": STAGE, "settings": {}, "models": {}, "prompt": None}


def export_video_trees(
    segment_trees: PartitionLoaders,
    captions: PartitionLoaders,
    annotations: PartitionLoaders,
    video_manifest: list[dict[str, Any]],
) -> VideoWork:
    """Each manifest video's full tree in the release's per-video JSON layout (lazy).

    Each tree is recorded with the fingerprints of the stage outputs it was put
    together from, so a rerun rebuilds only the trees whose inputs changed, and
    the release shards know which rows changed.

    Args:
        segment_trees: Stage 1 partitions.
        captions: Stage 2 partitions (videos without any keep null captions).
        annotations: Stage 3 partitions (videos without any keep null ``gpt``).
        video_manifest: Usable videos of this run.

    Returns:
        ``video_uid -> callable`` giving the release JSON or the video's failure.
    """
    videos = {
        v["video_uid"]: v for v in video_manifest if v["video_uid"] in segment_trees
    }
    upstream = {
        "segment_trees": segment_trees,
        "captions": captions,
        "annotations": annotations,
    }

    def convert(uid: str) -> Any:
        tree = assemble_tree(videos[uid], STAGE, segment_trees, captions, annotations)
        return tree if isinstance(tree, VideoFailure) else tree.to_release_json()

    def record(uid: str) -> dict[str, Any]:
        inputs = {name: input_fingerprint(p, uid) for name, p in upstream.items()}
        return made_by(EXPORT_IDENTITY, inputs)

    return map_videos(
        STAGE,
        {uid: (lambda uid=uid: convert(uid)) for uid in videos},
        lambda: _unchanged,
        ExecutorParams(),
        made_by=record,
    )


def _unchanged(value: Any) -> Any:
    return value


def input_fingerprint(partitions: PartitionLoaders, uid: str) -> str | None:
    """What a video's partition was made from: its recorded fingerprint, else a
    hash of its content (None when the stage has nothing for the video)."""
    if uid not in partitions:
        return None
    found = partitions.fingerprint(uid)
    if found is not None:
        return found
    value = partitions[uid]()
    return digest(value.to_dict() if isinstance(value, VideoFailure) else value)


def release_shards(
    release_trees: PartitionLoaders,
    video_manifest: list[dict[str, Any]],
    export: ExportParams,
) -> ReleaseRows:
    """The exported videos in manifest order, for the release shards.

    Only the shards whose videos changed are written (the catalog's
    :class:`~action100m.datasets.ReleaseShardsDataset` compares each video's
    fingerprint with its shard index), so a row is built only when needed.

    Args:
        release_trees: Loaders of the per-video release JSON, with the
            fingerprint of what made each.
        video_manifest: Usable videos of this run.
        export: Shard limits and whether to write one file as well.

    Returns:
        The videos with their fingerprints and a function giving each row.
    """
    uids = [v["video_uid"] for v in _exported(release_trees, video_manifest)]
    logger.info("export: %d videos in the release", len(uids))

    def row(uid: str) -> dict[str, Any]:
        return SegmentTree.from_release_json(release_trees[uid]()).to_release_row()

    return ReleaseRows(
        videos=[(uid, input_fingerprint(release_trees, uid)) for uid in uids],
        row=row,
        shard_rows=export.shard_rows,
        shard_bytes=export.shard_bytes,
        single_file=export.single_file,
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
    release_parquet: ReleaseSource,
    segmentation: SegmentationParams,
    captioning: CaptioningParams,
    aggregation: AggregationParams,
    export: ExportParams,
) -> tuple[str, str]:
    """The dataset cards of the FiftyOne export and of the release shards.

    Args:
        release_parquet: The run's release (read once, a row group at a time).
        segmentation: Stage 1 parameters (the embedder and its revision).
        captioning: Stage 2 parameters (both captioners).
        aggregation: Stage 3 parameters (the LLM, Self-Refine rounds).
        export: The card's licence, name, tags and hub repository.

    Returns:
        ``README.md`` texts (front matter, fields, models and statistics): the
        FiftyOne folder's, and the output folder's, whose front matter names the
        shards for ``datasets.load_dataset``.
    """
    params = {
        "segmentation": segmentation.model_dump(),
        "captioning": captioning.model_dump(),
        "aggregation": aggregation.model_dump(),
    }
    stats, models = card_statistics(release_parquet), run_models(params)
    return tuple(
        render_dataset_card(stats, export.card, models, shards)
        for shards in (False, True)
    )


def render_views(
    release_trees: PartitionLoaders,
    video_manifest: list[dict[str, Any]],
    output_dir: str,
) -> tuple[VideoWork, VideoWork]:
    """An HTML viewer and a timeline PNG per exported video (lazy).

    Each is recorded with its tree's fingerprint (and the page with its link
    to the video), so a rerun redraws only the videos whose tree changed.

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

    def link(uid: str) -> str:
        return relative_link(videos[uid]["path"], os.path.join(output_dir, "viewer"))

    def views(view: str, draw: Callable[[str], Any], **inputs: Callable) -> VideoWork:
        identity = {**EXPORT_IDENTITY, "settings": {"view": view}}
        return map_videos(
            STAGE,
            {uid: (lambda uid=uid: draw(uid)) for uid in videos},
            lambda: _unchanged,
            ExecutorParams(),
            made_by=lambda uid: made_by(
                identity,
                {
                    "release_trees": input_fingerprint(release_trees, uid),
                    **{name: f(uid) for name, f in inputs.items()},
                },
            ),
        )

    pages = views("html", lambda uid: render_html(tree(uid), link(uid)), link=link)
    images = views("timeline", lambda uid: render_timeline_png(tree(uid)))
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
