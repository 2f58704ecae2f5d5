"""Stage 3: structured annotations of every eligible node, with Self-Refine.

In-process, videos are annotated concurrently (``videos_in_flight`` ahead of the
one being saved, among those not already done) and all their eligible nodes
share the client's bound on requests in flight; each video's result is saved as
soon as it is complete. With ``executor.kind: ray`` a pool of actors, each with
its own client (and its own model for the ``transformers`` backend), annotates
one video each at a time. Both go through
:func:`~action100m.runtime.executor.map_videos`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from action100m.core.errors import VideoFailure, failure_of, record_failure
from action100m.core.params import AggregationParams, ExecutorParams
from action100m.core.tree import SegmentTree
from action100m.datasets import PartitionLoaders
from action100m.models.llm.factory import make_chat_client
from action100m.models.llm.prompts import PromptTemplate, load_prompt_template
from action100m.models.llm.refine import BackgroundLoop, annotate_tree
from action100m.models.work import collecting_work, counting_video
from action100m.release.assembly import assemble_tree
from action100m.runtime.executor import StageWorker, VideoWork, map_videos
from action100m.runtime.fingerprint import made_by, stage_identity
from action100m.runtime.progress import node_reporter

logger = logging.getLogger(__name__)
STAGE = "aggregation"


class AggregationWorker(StageWorker):
    """Annotates captioned trees; its client (or model) starts once per process.

    ``submit`` starts one video on a background event loop, so the scheduler can
    keep several videos in flight; calling the worker annotates one video and
    waits.
    """

    @classmethod
    def resources(
        cls, params: AggregationParams, template: PromptTemplate | None = None
    ) -> dict[str, float]:
        return {"num_gpus": params.llm.num_gpus}

    def __init__(
        self, params: AggregationParams, template: PromptTemplate | None = None
    ) -> None:
        self.params = params
        self.template = template or load_prompt_template(params.prompt.template)
        self.client = make_chat_client(params.llm)
        self.loop: BackgroundLoop | None = None

    def submit(self, tree: SegmentTree) -> Future:
        """Start annotating ``tree``."""
        if self.loop is None:
            self.client.ensure_setup()  # a client that cannot start fails the run
            self.loop = BackgroundLoop()
        return self.loop.submit(self._annotate(tree))

    async def _annotate(self, tree: SegmentTree) -> Any:
        # This video's requests, counted apart from the other videos in flight,
        # travel with its result or its failure, so the run's totals include
        # what Ray actors did, and what a failed video spent, too.
        with counting_video() as spent:
            try:
                result = await annotate_tree(
                    self.client,
                    tree,
                    self.params,
                    self.template,
                    node_reporter(tree.video_uid, "rounds"),
                )
            except Exception as exc:  # noqa: BLE001 - recorded as the video's failure
                failure = failure_of(STAGE, tree.video_uid, exc)
                return replace(failure, work={"llm": spent.as_dict()})
        result["work"] = {"llm": spent.as_dict()}
        return result

    def __call__(self, tree: SegmentTree) -> Any:
        return record_failure(STAGE, tree.video_uid, self.submit(tree).result)

    def teardown(self) -> None:
        if self.loop is not None:
            # Connections belong to the loop: close them on it, then stop it.
            self.loop.submit(self.client.aclose()).result()
            self.loop.close()
            self.loop = None
        self.client.teardown()


def annotate_trees(
    trees: dict[str, Callable[[], SegmentTree | VideoFailure]],
    params: AggregationParams,
    executor: ExecutorParams,
    upstream: Callable[[str], dict[str, Any]],
    template: PromptTemplate | None = None,
    video_manifest: list[dict[str, Any]] | None = None,
) -> VideoWork:
    """Lazy ``video_uid -> annotations`` through the one per-video scheduler.

    In-process, ``videos_in_flight`` videos are annotated at once (all their
    nodes share the client's bound on requests in flight); on Ray, each actor
    annotates one video at a time.

    Args:
        trees: ``video_uid -> callable`` giving the captioned tree (or a failure).
        params: Aggregation parameters.
        executor: In-process or Ray fan-out, and the ``on_changed`` policy.
        upstream: ``video_uid ->`` fingerprints of the outputs its tree comes from.
        template: The prompt template (None: the file ``params.prompt.template``,
            read here once, so that Ray workers get its texts, not a path).
        video_manifest: Manifest rows, for the video time behind the LLM's work
            (without it, the run's video hours stand in).

    Returns:
        ``video_uid -> callable`` giving the video's annotations or its failure.
    """
    template = template or load_prompt_template(params.prompt.template)

    identity = stage_identity(STAGE, params, "aggregation", template.hash())
    results = map_videos(
        STAGE,
        trees,
        AggregationWorker,
        executor,
        args=(params, template),
        made_by=lambda uid: made_by(identity, upstream(uid)),
        local_in_flight=params.videos_in_flight,
    )
    return collecting_work(results, video_manifest or [])


def annotate_segment_trees(
    segment_trees: PartitionLoaders,
    captions: PartitionLoaders,
    video_manifest: list[dict[str, Any]],
    params: AggregationParams,
    executor: ExecutorParams,
) -> VideoWork:
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
    return annotate_trees(
        trees,
        params,
        executor,
        lambda uid: {
            "segment_trees": segment_trees.fingerprint(uid),
            "captions": captions.fingerprint(uid),
        },
        video_manifest=video_manifest,
    )
