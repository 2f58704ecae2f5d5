"""Stage 1: frame embeddings, then a Ward merge tree turned into segments.

Both nodes return lazy mappings (``video_uid -> callable``): each video's work
runs when its partition is saved, and videos already on disk are skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from action100m.clustering import temporal_ward_linkage
from action100m.datasets import PartitionLoaders, load_upstream
from action100m.embedders import Embedder, embed_frame_stream, make_embedder
from action100m.errors import VideoError, VideoFailure, record_failure
from action100m.executor import map_videos
from action100m.params import ExecutorParams, SegmentationParams
from action100m.tree import SegmentTree
from action100m.video import VideoSource, manifest_sources, sample_frames

logger = logging.getLogger(__name__)
STAGE = "segmentation"


def embed_video(
    embedder: Embedder,
    video: dict[str, Any],
    params: SegmentationParams,
    source: VideoSource | None = None,
) -> dict[str, Any]:
    """Sample one of every ``frame_stride`` frames and embed them, streaming.

    Args:
        embedder: A set-up embedder.
        video: The video's manifest row.
        params: Segmentation parameters.
        source: The file with its storage options (default: the row's path).

    Returns:
        ``frame_times`` (N,), ``embeddings`` (N, D) and ``duration``.
    """
    batches = sample_frames(
        source or VideoSource(video["video_uid"], video["path"]),
        frame_stride=params.frame_stride,
        short_side=embedder.short_side,
        batch_size=max(params.embedder.batch_size, 8),
        expected_duration=video["duration"],
    )
    times, embeddings = embed_frame_stream(
        embedder, batches, batch_size=params.embedder.batch_size
    )
    return {
        "frame_times": times,
        "embeddings": embeddings,
        "duration": video["duration"],
    }


class EmbeddingWorker:
    """Embeds one video per call; the embedder loads once per process or actor."""

    def __init__(self, params: SegmentationParams) -> None:
        self.params = params
        self.embedder = make_embedder(params.embedder)

    def __call__(self, payload: tuple[dict[str, Any], VideoSource]) -> Any:
        video, source = payload
        self.embedder.ensure_setup()  # a model that cannot load fails the run
        return record_failure(
            STAGE,
            video["video_uid"],
            lambda: embed_video(self.embedder, video, self.params, source),
            video["path"],
        )


def embed_frames(
    video_manifest: list[dict[str, Any]],
    videos: list[VideoSource],
    params: SegmentationParams,
    executor: ExecutorParams,
) -> dict[str, Callable[[], Any]]:
    """Per-frame embeddings of every video (lazy, one video at a time).

    Args:
        video_manifest: Usable videos from ingest.
        videos: The video folder's listing (its storage options open the files).
        params: Segmentation parameters (the embedder backend is a config line).
        executor: In-process or Ray fan-out.

    Returns:
        ``video_uid -> callable`` giving the video's embeddings or its failure.
    """
    sources = manifest_sources(video_manifest, videos)
    payloads = {
        v["video_uid"]: (lambda v=v: (v, sources[v["video_uid"]]))
        for v in video_manifest
    }
    return map_videos(
        payloads,
        partial(EmbeddingWorker, params),
        executor,
        {"num_gpus": params.embedder.num_gpus},
    )


def build_tree(
    video: dict[str, Any], embeddings: dict[str, Any], params: SegmentationParams
) -> dict[str, Any]:
    """Ward merge tree of one video's frames -> its segment tree (as a dict)."""
    if len(embeddings["frame_times"]) == 0:
        raise VideoError("no sampled frames")
    linkage = temporal_ward_linkage(embeddings["embeddings"])
    tree = SegmentTree.from_merge_tree(
        video["video_uid"],
        linkage,
        embeddings["frame_times"],
        float(embeddings["duration"]),
        min_segment_s=params.tree.min_segment_s,
        time_decimals=params.tree.time_decimals,
        metadata=video["metadata"],
    )
    problems = tree.violations(require_captions=False)
    if problems:
        raise VideoError("segment tree breaks invariants: " + "; ".join(problems[:3]))
    return tree.to_dict()


def build_segment_trees(
    frame_embeddings: PartitionLoaders,
    video_manifest: list[dict[str, Any]],
    params: SegmentationParams,
) -> dict[str, Callable[[], Any]]:
    """Segment trees of every video in the manifest (lazy).

    Args:
        frame_embeddings: Loaders of the per-video embeddings.
        video_manifest: Usable videos from ingest.
        params: Segmentation parameters.

    Returns:
        ``video_uid -> callable`` giving the tree dict or the video's failure.
    """

    def work(video: dict[str, Any]) -> Any:
        embeddings = load_upstream(frame_embeddings, video, STAGE, "frame embeddings")
        if isinstance(embeddings, VideoFailure):
            return embeddings
        return record_failure(
            STAGE,
            video["video_uid"],
            lambda: build_tree(video, embeddings, params),
            video["path"],
        )

    return {v["video_uid"]: (lambda v=v: work(v)) for v in video_manifest}
