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
from action100m.llm.prompts import PromptTemplate, load_prompt_template
from action100m.llm.refine import BackgroundLoop, annotate_tree
from action100m.params import AggregationParams, ExecutorParams
from action100m.tree import SegmentTree

logger = logging.getLogger(__name__)
STAGE = "aggregation"


class AggregationWorker:
    """Annotates captioned trees; its client (or model) starts once per process.

    ``submit`` starts one video on a background event loop, so several videos
    can be in flight; calling the worker annotates one video and waits.
    """

    def __init__(
        self, params: AggregationParams, template: PromptTemplate | None = None
    ) -> None:
        self.params = params
        self.template = template or load_prompt_template(params.prompt.template)
        self.client = make_chat_client(params.llm)
        self.loop: BackgroundLoop | None = None

    def submit(self, load: Callable[[], SegmentTree | VideoFailure]) -> Future:
        """Start annotating the tree ``load`` gives (a failure is passed on)."""
        if self.loop is None:
            self.client.ensure_setup()  # a client that cannot start fails the run
            self.loop = BackgroundLoop()

        async def run() -> Any:
            tree = load()
            if isinstance(tree, VideoFailure):
                return tree
            return await annotate_tree(self.client, tree, self.params, self.template)

        return self.loop.submit(run())

    def __call__(self, tree: SegmentTree) -> Any:
        return record_failure(STAGE, tree.video_uid, self.submit(lambda: tree).result)


def annotate_videos(
    trees: dict[str, Callable[[], SegmentTree | VideoFailure]],
    params: AggregationParams,
    template: PromptTemplate | None = None,
) -> dict[str, Callable[[], Any]]:
    """Lazy ``video_uid -> annotations`` with a window of videos in flight.

    Args:
        trees: ``video_uid -> callable`` giving the captioned tree (or a failure).
        params: Aggregation parameters.
        template: The prompt template (None: the file ``params.prompt.template``).

    Returns:
        ``video_uid -> callable`` giving the video's annotations or its failure.
    """
    worker = AggregationWorker(params, template)
    uids = list(trees)
    futures: dict[int, Future] = {}

    def work(index: int) -> Any:
        for ahead in range(index, min(index + params.videos_in_flight, len(uids))):
            if ahead not in futures:
                futures[ahead] = worker.submit(trees[uids[ahead]])
        return record_failure(STAGE, uids[index], futures.pop(index).result)

    return {uid: (lambda i=i: work(i)) for i, uid in enumerate(uids)}


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
    # Read here, once: Ray workers get the texts, not a path to a file.
    template = load_prompt_template(params.prompt.template)
    if executor.kind == "local":
        return annotate_videos(trees, params, template)
    return map_videos(
        trees,
        partial(AggregationWorker, params, template),
        executor,
        {"num_gpus": params.llm.num_gpus},
    )
