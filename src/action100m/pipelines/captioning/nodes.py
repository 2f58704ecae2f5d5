"""Stage 2: the Tree-of-Captions.

PerceptionLM captions every node from 32 evenly spaced frames (plus a short
action label); Llama-3.2-Vision captions the middle frame of every leaf. All the
frames of a video come from one streaming decode pass, and a node is captioned as
soon as its frames are decoded. PerceptionLM's frames are made square without
stretching (letterboxed or centre-cropped, ``frame_aspect``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np
from PIL import Image

from action100m.core.errors import VideoFailure, record_failure
from action100m.core.params import CaptioningParams, ExecutorParams
from action100m.core.tree import Node, SegmentTree
from action100m.datasets import PartitionLoaders, load_upstream
from action100m.media.video import (
    FrameRequest,
    VideoSource,
    frames_at_times,
    manifest_sources,
)
from action100m.models.captioners import (
    Captioner,
    CaptionFailure,
    CaptionRequest,
    make_captioner,
)
from action100m.models.work import collecting_work
from action100m.runtime.executor import StageWorker, VideoWork, map_videos
from action100m.runtime.fingerprint import made_by, stage_identity
from action100m.runtime.progress import node_reporter

logger = logging.getLogger(__name__)
STAGE = "captioning"
PLM_FIELDS = ("plm_caption", "plm_action")  # every node
LLAMA_FIELDS = ("llama3_caption",)  # every leaf
CAPTION_FIELDS = PLM_FIELDS + LLAMA_FIELDS


def node_frame_times(node: Node, num_frames: int) -> tuple[float, ...]:
    """Centres of ``num_frames`` equal slices of the node's span."""
    step = (node.end - node.start) / num_frames
    return tuple(node.start + (i + 0.5) * step for i in range(num_frames))


def middle_time(node: Node) -> tuple[float]:
    """The middle of the node's span."""
    return ((node.start + node.end) / 2.0,)


def square_frame(frame: np.ndarray, size: int, aspect: str) -> np.ndarray:
    """A ``size x size`` frame with the aspect ratio kept.

    Args:
        frame: uint8 ``(H, W, 3)``.
        size: The side of the square.
        aspect: ``pad`` (fit inside, black bars centred) or ``crop`` (fill,
            centre cut).
    """
    height, width = frame.shape[:2]
    fit = max if aspect == "pad" else min
    scale = size / fit(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    if (new_w, new_h) != (width, height):
        resized = Image.fromarray(frame).resize((new_w, new_h), Image.BICUBIC)
        frame = np.asarray(resized)
    if aspect == "crop":
        top, left = (new_h - size) // 2, (new_w - size) // 2
        return np.ascontiguousarray(frame[top : top + size, left : left + size])
    out = np.zeros((size, size, 3), dtype=np.uint8)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    out[top : top + new_h, left : left + new_w] = frame
    return out


def frame_requests(
    tree: SegmentTree, params: CaptioningParams, video: dict[str, Any] | None = None
) -> list[FrameRequest]:
    """PLM clips for every node, Llama mid-frames for every leaf.

    PLM frames are decoded at about the size :func:`square_frame` needs (from the
    manifest's ``width`` and ``height`` when known), keeping the aspect ratio.
    """
    side = params.plm.frame_size
    width, height = (video or {}).get("width"), (video or {}).get("height")
    if params.plm.frame_aspect == "pad" and width and height:
        side = max(2, round(side * min(width, height) / max(width, height)))
    requests = [
        FrameRequest(
            ("plm", n.node_id),
            node_frame_times(n, params.plm.num_frames),
            short_side=side,
        )
        for n in tree.nodes
    ]
    requests += [
        FrameRequest(
            ("llama", n.node_id),
            middle_time(n),
            short_side=params.llama.frame_short_side,
        )
        for n in tree.leaves()
    ]
    return requests


class _VideoCaptions:
    """Accumulates one video's captions and per-node errors.

    Batching backends caption a batch once it is full; streaming ones (served
    models) get each request as soon as its frames are decoded. ``on_progress``
    hears ``(nodes done, nodes)`` each time a node has all its fields answered
    (or failed).
    """

    def __init__(
        self,
        tree: SegmentTree,
        plm: Captioner,
        llama: Captioner,
        params,
        on_progress: Callable[[int, int], None] | None = None,
    ):
        self.plm, self.llama, self.params = plm, llama, params
        self.fields = {n.node_id: dict.fromkeys(CAPTION_FIELDS) for n in tree.nodes}
        self.errors: list[dict[str, Any]] = []
        self.pending: dict[str, list[tuple[str, list]]] = {"plm": [], "llama": []}
        self.sent: list[tuple[str, str, Future]] = []
        # Answers still awaited per node; answers of served models arrive on
        # their clients' threads.
        leaves = {n.node_id for n in tree.leaves()}
        self.awaited = {
            node_id: len(PLM_FIELDS) + len(LLAMA_FIELDS) * (node_id in leaves)
            for node_id in self.fields
        }
        self.nodes_done = 0
        self.on_progress = on_progress or (lambda done, total: None)
        self._lock = threading.Lock()
        self.on_progress(0, len(self.awaited))

    def _answered(self, node_id: str) -> None:
        with self._lock:
            self.awaited[node_id] -= 1
            if not self.awaited[node_id]:
                self.nodes_done += 1
                self.on_progress(self.nodes_done, len(self.awaited))

    def add(self, kind: str, node_id: str, frames: list) -> None:
        if kind == "plm":
            size, aspect = self.params.plm.frame_size, self.params.plm.frame_aspect
            frames = [square_frame(f, size, aspect) for f in frames]
        captioner = self.plm if kind == "plm" else self.llama
        if captioner.streams:  # sent now; the answers are collected in finish
            requests = self._requests(kind, [(node_id, frames)])
            futures = captioner.submit_many([r for _, _, r in requests])
            for (node, field, _), future in zip(requests, futures, strict=True):
                future.add_done_callback(lambda _, node=node: self._answered(node))
                self.sent.append((node, field, future))
            return
        self.pending[kind].append((node_id, frames))
        batch_size = (
            self.params.plm if kind == "plm" else self.params.llama
        ).batch_size
        if len(self.pending[kind]) >= batch_size:
            self.flush(kind)

    def _store(self, node_id: str, field: str, result: str | CaptionFailure) -> None:
        if isinstance(result, CaptionFailure):
            self.errors.append(
                {"node_id": node_id, "field": field, "reason": result.reason}
            )
        else:
            self.fields[node_id][field] = result

    def _requests(
        self, kind: str, items: list[tuple[str, list]]
    ) -> list[tuple[str, str, CaptionRequest]]:
        if kind == "plm":
            # The short action first: an engine then answers the caption from
            # the same prefix, without holding the prompt twice.
            prompts = (
                ("plm_action", self.params.plm.action_prompt),
                ("plm_caption", self.params.plm.caption_prompt),
            )
            return [
                (node_id, field, CaptionRequest(frames, prompt, "video", node_id))
                for node_id, frames in items
                for field, prompt in prompts
            ]
        return [
            (
                node_id,
                "llama3_caption",
                CaptionRequest(frames, self.params.llama.prompt, "image"),
            )
            for node_id, frames in items
        ]

    def flush(self, kind: str) -> None:
        items, self.pending[kind] = self.pending[kind], []
        if items:
            requests = self._requests(kind, items)
            captioner = self.plm if kind == "plm" else self.llama
            results = captioner([r for _, _, r in requests])
            for (node_id, field, _), result in zip(requests, results, strict=True):
                self._store(node_id, field, result)
                self._answered(node_id)

    def finish(self) -> None:
        """Caption what is still batched and wait for the requests sent."""
        self.flush("plm")
        self.flush("llama")
        sent, self.sent = self.sent, []
        for node_id, field, future in sent:
            self._store(node_id, field, future.result())


def caption_video(
    tree: SegmentTree,
    video: dict[str, Any],
    plm: Captioner,
    llama: Captioner,
    params: CaptioningParams,
    source: VideoSource | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Caption one video's tree from a single decoding pass.

    Args:
        tree: The video's segment tree.
        video: Its manifest row.
        plm: The set-up PerceptionLM captioner.
        llama: The set-up Llama-3.2-Vision captioner.
        params: Captioning parameters (prompts, frame counts, sizes).
        source: The file with its storage options (default: the row's path).
        on_progress: Called with ``(nodes done, nodes)`` as nodes get all their
            captions (live progress).

    Returns:
        ``captions`` (node id -> the three fields), per-node ``errors`` and the
        ``models`` that wrote them.
    """
    result = _VideoCaptions(tree, plm, llama, params, on_progress)
    source = source or VideoSource(video["video_uid"], video["path"])
    for (kind, node_id), frames in frames_at_times(
        source,
        frame_requests(tree, params, video),
        expected_duration=video["duration"],
    ):
        result.add(kind, node_id, frames)
    result.finish()
    logger.info(
        "captioning: %s: %d nodes, %d failed fields",
        tree.video_uid,
        len(tree.nodes),
        len(result.errors),
    )
    return {
        "video_uid": tree.video_uid,
        "captions": result.fields,
        "errors": result.errors,
        "models": {"plm": plm.describe(), "llama": llama.describe()},
        "work": {"plm": plm.work.take(), "llama": llama.work.take()},
    }


class CaptioningWorker(StageWorker):
    """Captions one tree per call; both models load once per process or actor.

    ``submit`` starts a video on one of ``videos_in_flight`` threads, so that with
    served captioners several videos' requests share the endpoints (the
    scheduler keeps that many in flight in-process).
    """

    @classmethod
    def resources(cls, params: CaptioningParams) -> dict[str, float]:
        return {"num_gpus": params.plm.num_gpus}

    def __init__(self, params: CaptioningParams) -> None:
        self.params = params
        self.plm = make_captioner(params.plm)
        self.llama = make_captioner(params.llama)
        self.pool: ThreadPoolExecutor | None = None

    def teardown(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None
        self.plm.teardown()
        self.llama.teardown()

    def submit(
        self, payload: tuple[dict[str, Any], dict[str, Any], VideoSource]
    ) -> Future:
        """Start captioning one video; returns its future."""
        self._setup()
        if self.pool is None:
            self.pool = ThreadPoolExecutor(
                self.params.videos_in_flight, thread_name_prefix="captioning"
            )
        return self.pool.submit(self._caption, payload)

    def _setup(self) -> None:
        self.plm.ensure_setup()  # a model that cannot load fails the run, once
        self.llama.ensure_setup()

    def __call__(
        self, payload: tuple[dict[str, Any], dict[str, Any], VideoSource]
    ) -> Any:
        self._setup()
        return self._caption(payload)

    def _caption(
        self, payload: tuple[dict[str, Any], dict[str, Any], VideoSource]
    ) -> Any:
        tree_data, video, source = payload
        tree = SegmentTree.from_dict(tree_data)
        result = record_failure(
            STAGE,
            video["video_uid"],
            lambda: caption_video(
                tree,
                video,
                self.plm,
                self.llama,
                self.params,
                source,
                node_reporter(video["video_uid"], "nodes"),
            ),
            video["path"],
        )
        if isinstance(result, VideoFailure):  # what it spent reaches the totals
            work = {"plm": self.plm.work.take(), "llama": self.llama.work.take()}
            result = replace(result, work=work)
        return result


def caption_trees(
    segment_trees: PartitionLoaders,
    video_manifest: list[dict[str, Any]],
    videos: list[VideoSource],
    params: CaptioningParams,
    executor: ExecutorParams,
) -> VideoWork:
    """Captions of every tree of the manifest's videos (lazy; in-process,
    ``params.videos_in_flight`` videos at a time).

    Args:
        segment_trees: Loaders of the per-video trees.
        video_manifest: Usable videos from ingest.
        videos: The video folder's listing (its storage options open the files).
        params: Captioning parameters (backends are config lines).
        executor: In-process or Ray fan-out.

    Returns:
        ``video_uid -> callable`` giving the video's captions or its failure.
    """

    sources = manifest_sources(video_manifest, videos)

    def payload(video: dict[str, Any]) -> Any:
        data = load_upstream(segment_trees, video, STAGE, "segment tree")
        if isinstance(data, VideoFailure):
            return data
        return data, video, sources[video["video_uid"]]

    payloads = {v["video_uid"]: (lambda v=v: payload(v)) for v in video_manifest}
    identity = stage_identity(STAGE, params, "captioning")
    results = map_videos(
        STAGE,
        payloads,
        CaptioningWorker,
        executor,
        args=(params,),
        made_by=lambda uid: made_by(
            identity, {"segment_trees": segment_trees.fingerprint(uid)}
        ),
        local_in_flight=params.videos_in_flight,
    )
    return collecting_work(results, video_manifest)
