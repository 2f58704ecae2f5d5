"""Stage 3: structured annotations of every eligible node, with Self-Refine.

In-process, videos are annotated concurrently (``videos_in_flight`` ahead of the
one being saved) and all their eligible nodes share the client's bound on
requests in flight; each video's result is saved as soon as it is complete. With
``executor.kind: ray`` a pool of actors, each with its own client (and its own
model for the ``transformers`` backend), annotates one video each at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import Any

from action100m.assembly import assemble_tree
from action100m.datasets import PartitionLoaders
from action100m.errors import VideoFailure, record_failure
from action100m.executor import map_videos
from action100m.llm.factory import make_chat_client
from action100m.llm.refine import BackgroundLoop, annotate_tree
from action100m.params import AggregationParams, ExecutorParams
from action100m.tree import SegmentTree

logger = logging.getLogger(__name__)
STAGE = "aggregation"


def annotate_videos(
    trees: dict[str, Callable[[], SegmentTree | VideoFailure]],
    params: AggregationParams,
) -> dict[str, Callable[[], Any]]:
    """Lazy ``video_uid -> annotations`` with a window of videos in flight.

    Args:
        trees: ``video_uid -> callable`` giving the captioned tree (or a failure).
        params: Aggregation parameters.

    Returns:
        ``video_uid -> callable`` giving the video's annotations or its failure.
    """
    client = make_chat_client(params.llm)
    loop: BackgroundLoop | None = None
    uids = list(trees)
    futures: dict[int, Future] = {}

    async def run(uid: str) -> Any:
        tree = trees[uid]()
        if isinstance(tree, VideoFailure):
            return tree
        return await annotate_tree(client, tree, params)

    def start(index: int) -> None:
        nonlocal loop
        if index < len(uids) and index not in futures:
            if loop is None:
                client.ensure_setup()  # a client that cannot start fails the run
                loop = BackgroundLoop()
            futures[index] = loop.submit(run(uids[index]))

    def work(index: int) -> Any:
        for ahead in range(index, index + params.videos_in_flight):
            start(ahead)
        future = futures.pop(index)
        return record_failure(STAGE, uids[index], future.result)

    return {uid: (lambda i=i: work(i)) for i, uid in enumerate(uids)}


class AggregationWorker:
    """Annotates one captioned tree per call; the client starts once per process."""

    def __init__(self, params: AggregationParams) -> None:
        self.params = params
        self.client = make_chat_client(params.llm)
        self.loop: BackgroundLoop | None = None

    def __call__(self, tree: SegmentTree) -> Any:
        self.client.ensure_setup()  # a client that cannot start fails the run
        if self.loop is None:
            self.loop = BackgroundLoop()
        loop = self.loop
        return record_failure(
            STAGE,
            tree.video_uid,
            lambda: loop.submit(annotate_tree(self.client, tree, self.params)).result(),
        )


def annotate_segment_trees(
    segment_trees: PartitionLoaders,
    captions: PartitionLoaders,
    video_manifest: list[dict[str, Any]],
    params: AggregationParams,
    executor: ExecutorParams,
) -> dict[str, Callable[[], Any]]:
    """Annotations of the manifest's captioned trees (lazy, one video per file).

    Args:
        segment_trees: Stage 1 partitions.
        captions: Stage 2 partitions.
        video_manifest: Usable videos from ingest.
        params: Aggregation parameters.
        executor: In-process or Ray fan-out.

    Returns:
        ``video_uid -> callable`` giving annotations or the video's failure.
    """
    trees = {
        v["video_uid"]: (lambda v=v: assemble_tree(v, STAGE, segment_trees, captions))
        for v in video_manifest
    }
    if executor.kind == "local":
        return annotate_videos(trees, params)
    return map_videos(
        trees,
        partial(AggregationWorker, params),
        executor,
        {"num_gpus": params.llm.num_gpus},
    )
