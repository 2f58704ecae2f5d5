"""Stage 1: frame embeddings, then a Ward merge tree turned into segments.

The worker that embeds a video also builds its Ward merge tree (``linkage``) from
the float32 embeddings in memory, and stores it with the frame times; the
embeddings themselves are stored as ``segmentation.embeddings_dtype`` (float16 by
default: half the disk) or not at all (``keep_embeddings: false``). The segment
tree is made from the stored merge tree, so neither setting changes it.

Both nodes return lazy mappings (``video_uid -> callable``) from the one
scheduler (:func:`~action100m.runtime.executor.map_videos`): each video's work runs when
its partition is saved, and videos whose output on disk was made with the same
settings are never submitted.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from action100m.core.clustering import temporal_ward_linkage
from action100m.core.errors import VideoError, VideoFailure, record_failure
from action100m.core.params import ExecutorParams, SegmentationParams
from action100m.core.tree import SegmentTree
from action100m.datasets import PartitionLoaders, load_upstream
from action100m.media.prefetch import prefetch
from action100m.media.video import VideoSource, manifest_sources, sample_frames
from action100m.models.embedders import Embedder, embed_frame_stream, make_embedder
from action100m.models.work import collecting_work
from action100m.runtime.executor import StageWorker, VideoWork, map_videos
from action100m.runtime.fingerprint import digest, made_by, stage_identity

logger = logging.getLogger(__name__)
STAGE = "segmentation"


def video_identity(video: dict[str, Any]) -> str:
    """A hash of the probed file (not its folder or its metadata)."""
    return digest({k: v for k, v in video.items() if k not in ("path", "metadata")})


def embed_video(
    embedder: Embedder,
    video: dict[str, Any],
    params: SegmentationParams,
    source: VideoSource | None = None,
) -> dict[str, Any]:
    """Sample one of every ``frame_stride`` frames and embed them, streaming.

    With ``params.prefetch`` > 0, decoding and preprocessing each run in their
    own thread, that many batches ahead of the model.

    Args:
        embedder: A set-up embedder.
        video: The video's manifest row.
        params: Segmentation parameters.
        source: The file with its storage options (default: the row's path).

    Returns:
        ``frame_times`` (N,), ``embeddings`` (N, D) and ``duration``.
    """
    decoded = prefetch(
        sample_frames(
            source or VideoSource(video["video_uid"], video["path"]),
            frame_stride=params.frame_stride,
            short_side=embedder.short_side,
            batch_size=params.decode_batch,
            expected_duration=video["duration"],
        ),
        params.prefetch,
    )
    ready = prefetch(
        ((times, embedder.preprocess(frames)) for times, frames in decoded),
        params.prefetch,
    )
    times, embeddings = embed_frame_stream(
        embedder, ready, batch_size=params.embedder.batch_size, preprocessed=True
    )
    return {
        "frame_times": times,
        "embeddings": embeddings,
        "duration": video["duration"],
    }


def stored_embeddings(
    embedded: dict[str, Any], params: SegmentationParams
) -> dict[str, Any]:
    """What is kept of a video's embeddings: its merge tree, and them if asked.

    Args:
        embedded: :func:`embed_video`'s result (float32 embeddings).
        params: ``keep_embeddings`` and ``embeddings_dtype``.

    Returns:
        ``frame_times``, ``duration``, ``linkage`` (the Ward merge tree of the
        float32 embeddings; absent without frames) and, if kept, ``embeddings``
        in the stored dtype.
    """
    embeddings = np.asarray(embedded["embeddings"])
    stored = {"frame_times": embedded["frame_times"], "duration": embedded["duration"]}
    if len(embeddings):
        stored["linkage"] = temporal_ward_linkage(embeddings)
    if params.keep_embeddings:
        stored["embeddings"] = embeddings.astype(params.embeddings_dtype)
    return stored


class EmbeddingWorker(StageWorker):
    """Embeds one video per call; the embedder loads once per process or actor."""

    @classmethod
    def resources(cls, params: SegmentationParams) -> dict[str, float]:
        return {"num_gpus": params.embedder.num_gpus}

    def __init__(self, params: SegmentationParams) -> None:
        self.params = params
        self.embedder = make_embedder(params.embedder)

    def teardown(self) -> None:
        self.embedder.teardown()

    def __call__(self, payload: tuple[dict[str, Any], VideoSource]) -> Any:
        video, source = payload
        self.embedder.ensure_setup()  # a model that cannot load fails the run

        def embed() -> dict[str, Any]:
            result = stored_embeddings(
                embed_video(self.embedder, video, self.params, source), self.params
            )
            return result | {"work": {"embedder": self.embedder.work.take()}}

        return record_failure(STAGE, video["video_uid"], embed, video["path"])


def embed_frames(
    video_manifest: list[dict[str, Any]],
    videos: list[VideoSource],
    params: SegmentationParams,
    executor: ExecutorParams,
) -> VideoWork:
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
    identity = stage_identity(
        "frame_embeddings", params, "segmentation", exclude={"tree"}
    )
    rows = {v["video_uid"]: v for v in video_manifest}
    results = map_videos(
        STAGE,
        payloads,
        EmbeddingWorker,
        executor,
        args=(params,),
        made_by=lambda uid: made_by(identity, {"video": video_identity(rows[uid])}),
    )
    return collecting_work(results, video_manifest)


def build_tree(
    video: dict[str, Any], embeddings: dict[str, Any], params: SegmentationParams
) -> dict[str, Any]:
    """One video's merge tree -> its segment tree (as a dict).

    Args:
        video: The video's manifest row.
        embeddings: ``frame_times``, ``duration`` and the stored ``linkage``, or
            ``embeddings`` to build it from.
        params: Segmentation parameters (the tree's).

    Returns:
        The segment tree as a dict.
    """
    if len(embeddings["frame_times"]) == 0:
        raise VideoError("no sampled frames")
    linkage = embeddings.get("linkage")
    if linkage is None:  # embeddings as embed_video returns them
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
    problems = tree.violations(
        require_captions=False, min_leaf_s=params.tree.min_segment_s
    )
    if problems:
        raise VideoError("segment tree breaks invariants: " + "; ".join(problems[:3]))
    return tree.to_dict()


def build_segment_trees(
    frame_embeddings: PartitionLoaders,
    video_manifest: list[dict[str, Any]],
    params: SegmentationParams,
    executor: ExecutorParams,
) -> VideoWork:
    """Segment trees of every video in the manifest (lazy).

    Args:
        frame_embeddings: Loaders of the per-video embeddings.
        video_manifest: Usable videos from ingest.
        params: Segmentation parameters.
        executor: Its ``on_changed`` policy (trees are built in-process).

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

    identity = stage_identity("segment_trees", params.tree)
    rows = {v["video_uid"]: v for v in video_manifest}

    def record(uid: str) -> dict[str, Any]:
        upstream = {
            "frame_embeddings": frame_embeddings.fingerprint(uid),
            "metadata": digest(rows[uid]["metadata"]),
        }
        return made_by(identity, upstream)

    return map_videos(
        STAGE,
        {uid: (lambda v=v: v) for uid, v in rows.items()},
        lambda: work,
        executor.model_copy(update={"kind": "local"}),
        made_by=record,
    )
