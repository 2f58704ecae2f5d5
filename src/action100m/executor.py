"""Per-video fan-out: in-process, or over a Ray cluster with the same code.

A stage gives :func:`map_videos` a factory for its worker (an object whose
constructor loads the models once and whose call handles one video) and a lazy
payload per video. With ``kind: local`` one worker runs in this process; with
``kind: ray`` a pool of Ray actors (each with the stage's CPU/GPU request) runs
them, ``max_in_flight`` videos ahead of the one being saved. Either way the
stage returns the same ``video_uid -> callable`` mapping that the partitioned
datasets save lazily, so Kedro stays the graph and Ray only the fan-out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from action100m.errors import VideoFailure

logger = logging.getLogger(__name__)


class _RayWorker:
    """Holds one stage worker inside a Ray actor."""

    def __init__(self, factory: Callable[[], Callable[[Any], Any]]) -> None:
        self.worker = factory()

    def run(self, payload: Any) -> Any:
        return self.worker(payload)


def _ray_pool(factory, settings) -> list:
    import ray

    if not ray.is_initialized():
        ray.init(
            address=settings.address,
            include_dashboard=False,
            log_to_driver=False,
            ignore_reinit_error=True,
        )
    actor = ray.remote(_RayWorker).options(
        num_cpus=settings.num_cpus,
        num_gpus=settings.num_gpus,
        max_restarts=settings.max_retries,
        max_task_retries=settings.max_retries,
    )
    return [actor.remote(factory) for _ in range(settings.workers)]


def map_videos(
    payloads: dict[str, Callable[[], Any]],
    factory: Callable[[], Callable[[Any], Any]],
    executor: Any,
    stage_resources: dict[str, float] | None = None,
) -> dict[str, Callable[[], Any]]:
    """Lazy ``video_uid -> result`` over a worker, local or on Ray.

    Args:
        payloads: ``video_uid -> callable`` giving the worker's input, or a
            :class:`VideoFailure` to pass on without running the worker.
        factory: Picklable zero-argument callable building the worker (models
            load here, once per process or actor).
        executor: ``ExecutorParams`` (``kind``, ``ray`` settings).
        stage_resources: Overrides of the Ray resources for this stage
            (``num_cpus``, ``num_gpus``).

    Returns:
        ``video_uid -> callable`` giving each result, in any order asked.
    """
    uids = list(payloads)
    if executor.kind == "local":
        state: dict[str, Any] = {}

        def run_local(uid: str) -> Any:
            payload = payloads[uid]()
            if isinstance(payload, VideoFailure):
                return payload
            if "worker" not in state:
                state["worker"] = factory()
            return state["worker"](payload)

        return {uid: (lambda uid=uid: run_local(uid)) for uid in uids}

    settings = executor.ray.model_copy(update=stage_resources or {})
    pool: list = []
    pending: dict[int, Any] = {}

    def submit(index: int) -> None:
        if index >= len(uids) or index in pending:
            return
        if not pool:
            pool.extend(_ray_pool(factory, settings))
        payload = payloads[uids[index]]()
        if isinstance(payload, VideoFailure):
            pending[index] = payload
        else:
            pending[index] = pool[index % len(pool)].run.remote(payload)

    def run_ray(index: int) -> Any:
        import ray

        for ahead in range(index, index + settings.max_in_flight):
            submit(ahead)
        result = pending.pop(index)
        return result if isinstance(result, VideoFailure) else ray.get(result)

    return {uid: (lambda i=i: run_ray(i)) for i, uid in enumerate(uids)}
