"""Per-video fan-out: one scheduler, in-process or over a Ray cluster.

A stage gives :func:`map_videos` a factory for its worker (an object whose
constructor loads the models once and whose call handles one video) and a lazy
payload per video. It gets back a :class:`VideoWork`: the ``video_uid ->
callable`` mapping that the partitioned datasets save lazily, so Kedro stays the
graph and the executor only the fan-out.

Before it computes anything, the dataset tells the work which videos it will
actually ask for (:meth:`VideoWork.plan`: those whose output is missing or was
made with other settings). The scheduler then keeps ``max_in_flight`` of *those*
videos submitted ahead of the one being saved, and never submits a video whose
output is reused. With ``kind: local`` one worker runs in this process (a worker
with a ``submit`` method, such as Stage 3's, runs several videos at once); with
``kind: ray`` a pool of Ray actors (each with the stage's CPU/GPU request) runs
them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from action100m.core.errors import VideoFailure, record_failure

logger = logging.getLogger(__name__)


class StageWorker:
    """The per-video worker of a stage, in the manner of cosmos-curate's stages.

    Its constructor builds the stage's models (their weights load once per
    process or Ray actor), a call handles one video, :meth:`teardown` lets the
    models go when the stage is done, and :meth:`resources` declares what one
    worker needs from a Ray cluster, from the stage's parameters.
    """

    @classmethod
    def resources(cls, *args: Any) -> dict[str, float]:
        """Ray resources of one worker (``num_cpus``, ``num_gpus``)."""
        return {}

    def __call__(self, payload: Any) -> Any:
        raise NotImplementedError

    def teardown(self) -> None:
        """Release models and clients (the worker is not called again)."""


class _ProgressInbox:
    """A Ray actor holding the latest per-node progress its workers sent, per
    video, until the driver takes it."""

    def __init__(self) -> None:
        self.latest: dict[str, tuple[str, int, int]] = {}

    def put(self, video_uid: str, unit: str, done: int, total: int) -> None:
        seen = self.latest.get(video_uid)
        if seen is None or done >= seen[1]:  # threads of a worker may cross
            self.latest[video_uid] = (unit, done, total)

    def take(self) -> dict[str, tuple[str, int, int]]:
        latest, self.latest = self.latest, {}
        return latest


def _send_progress(inbox: Any, video_uid: str, unit: str, done: int, total: int):
    inbox.put.remote(video_uid, unit, done, total)  # not waited for


class _ProgressRelay:
    """Reads the workers' per-node progress into this (driver) process's
    :data:`~action100m.runtime.progress.NODE_EVENTS`, every ``every_s``."""

    def __init__(self, every_s: float = 0.5) -> None:
        import ray

        self.inbox = ray.remote(_ProgressInbox).options(num_cpus=0).remote()
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _relay(self) -> None:
        import ray

        from action100m.runtime.progress import NODE_EVENTS

        for uid, (unit, done, total) in ray.get(self.inbox.take.remote()).items():
            NODE_EVENTS.report(uid, unit, done, total)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self._relay()
            except Exception as exc:  # noqa: BLE001 - progress must not fail a run
                logger.debug("per-node progress not relayed: %s", exc)

    def close(self) -> None:
        import ray

        self._stop.set()
        self._thread.join()
        ray.kill(self.inbox)


class _RayWorker:
    """Holds one stage worker inside a Ray actor; its per-node progress goes to
    the driver's inbox."""

    def __init__(
        self, factory: Callable[[], Callable[[Any], Any]], inbox: Any = None
    ) -> None:
        if inbox is not None:
            from action100m.runtime.progress import NODE_EVENTS

            NODE_EVENTS.forward(partial(_send_progress, inbox))
        self.worker = factory()

    def run(self, payload: Any) -> Any:
        return self.worker(payload)

    def teardown(self) -> None:
        getattr(self.worker, "teardown", lambda: None)()


def init_ray(address: str | None) -> None:
    """Join the cluster at ``address`` (None: start a local Ray instance), once."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            ignore_reinit_error=True,
        )


def _ray_pool(factory, settings) -> tuple[list, _ProgressRelay]:
    import ray

    init_ray(settings.address)
    actor = ray.remote(_RayWorker).options(
        num_cpus=settings.num_cpus,
        num_gpus=settings.num_gpus,
        max_restarts=settings.max_retries,
        max_task_retries=settings.max_retries,
    )
    relay = _ProgressRelay()
    return [actor.remote(factory, relay.inbox) for _ in range(settings.workers)], relay


class _LocalRunner:
    """Runs payloads on one worker in this process, built at the first payload."""

    def __init__(self, stage: str, factory: Callable[[], Any]) -> None:
        self.stage, self.factory, self.worker = stage, factory, None

    def start(self, payload: Any) -> Callable[[], Any]:
        if self.worker is None:
            self.worker = self.factory()
        worker = self.worker
        if not hasattr(worker, "submit"):
            return lambda: worker(payload)
        future = worker.submit(payload)
        uid = getattr(payload, "video_uid", None) or "?"
        return lambda: record_failure(self.stage, uid, future.result)

    def close(self) -> None:
        if self.worker is not None:
            getattr(self.worker, "teardown", lambda: None)()
            self.worker = None


class _RayRunner:
    """Runs payloads round-robin on a pool of Ray actors, started at the first."""

    def __init__(self, factory: Callable[[], Any], settings: Any) -> None:
        self.factory, self.settings = factory, settings
        self.pool: list = []
        self.relay: _ProgressRelay | None = None
        self.sent = 0

    def start(self, payload: Any) -> Callable[[], Any]:
        import ray

        if not self.pool:
            self.pool, self.relay = _ray_pool(self.factory, self.settings)
        ref = self.pool[self.sent % len(self.pool)].run.remote(payload)
        self.sent += 1
        return lambda: ray.get(ref)

    def close(self) -> None:
        """Tear the workers down and end the actors, freeing their GPUs for the
        next stage."""
        import ray

        if self.pool:
            ray.get([actor.teardown.remote() for actor in self.pool])
            for actor in self.pool:
                ray.kill(actor)
        if self.relay is not None:
            self.relay.close()
            self.relay = None
        self.pool = []


class VideoWork(dict):
    """``video_uid -> callable`` results of one stage, submitted ahead of the saves.

    Args:
        payloads: ``video_uid -> callable`` giving the worker's input, or a
            :class:`VideoFailure` to pass on without running the worker.
        runner: Runs the stage's worker: ``start(payload)`` submits one payload
            and returns a zero-argument callable that waits for its result;
            ``close()`` tears the worker down once every planned video is done.
        max_in_flight: Videos submitted ahead of (and including) the one asked.
        made_by: ``video_uid -> dict`` describing what makes the output (see
            :mod:`action100m.runtime.fingerprint`); ``None`` when outputs carry none.
        on_changed: ``recompute`` an output made with other settings, or
            ``stop`` the run and name what differs.
    """

    def __init__(
        self,
        payloads: dict[str, Callable[[], Any]],
        runner: _LocalRunner | _RayRunner,
        max_in_flight: int = 1,
        made_by: Callable[[str], dict[str, Any]] | None = None,
        on_changed: str = "recompute",
    ) -> None:
        super().__init__({uid: partial(self._result, uid) for uid in payloads})
        self._payloads = payloads
        self._runner = runner
        self._max_in_flight = max(1, max_in_flight)
        self._made_by = made_by
        self.on_changed = on_changed
        self._pending: dict[str, Callable[[], Any]] = {}
        self._done: set[str] = set()
        self.submitted: list[str] = []
        # Called with the videos that will be asked for, once the save knows
        # them (live progress counts the others as done at once).
        self.plan_listeners: list[Callable[[list[str]], None]] = []
        self.plan(list(payloads))

    def __deepcopy__(self, memo: dict) -> VideoWork:
        return self  # pending work, not data: a copy would run it twice

    def plan(self, uids: list[str]) -> None:
        """Only ``uids`` will be asked for, in this order: look ahead over them."""
        self._order = [uid for uid in uids if uid in self._payloads]
        self._position = {uid: i for i, uid in enumerate(self._order)}
        self._left = set(self._order) - self._done  # planned, not yet asked for
        for listener in self.plan_listeners:
            listener(self._order)

    def made_by(self, uid: str) -> dict[str, Any] | None:
        """What makes ``uid``'s output, or ``None`` if this stage records nothing."""
        return None if self._made_by is None else self._made_by(uid)

    def _submit(self, uid: str) -> Callable[[], Any]:
        self.submitted.append(uid)
        payload = self._payloads[uid]()
        if isinstance(payload, VideoFailure):
            return lambda: payload
        return self._runner.start(payload)

    def _result(self, uid: str) -> Any:
        index = self._position.get(uid)
        stop = None if index is None else index + self._max_in_flight
        ahead = [] if index is None else self._order[index:stop]
        for other in ahead:
            if other not in self._pending and other not in self._done:
                self._pending[other] = self._submit(other)
        waiter = self._pending.pop(uid, None) or self._submit(uid)
        self._done.add(uid)
        self._left.discard(uid)
        result = waiter()
        if not self._pending and not self._left:
            self._runner.close()  # the stage's last planned video is done
        return result


def map_videos(
    stage: str,
    payloads: dict[str, Callable[[], Any]],
    worker: type[StageWorker] | Callable[[], Callable[[Any], Any]],
    executor: Any,
    *,
    args: tuple = (),
    made_by: Callable[[str], dict[str, Any]] | None = None,
    local_in_flight: int = 1,
) -> VideoWork:
    """Lazy ``video_uid -> result`` over a worker, local or on Ray.

    Args:
        stage: The stage's name (recorded with failures of submitted work).
        payloads: ``video_uid -> callable`` giving the worker's input, or a
            :class:`VideoFailure` to pass on without running the worker.
        worker: A :class:`StageWorker` class, built as ``worker(*args)`` once per
            process or actor, with the Ray resources it declares; or any
            picklable zero-argument factory of a callable (no resources).
        executor: ``ExecutorParams`` (``kind``, ``ray`` settings, ``on_changed``).
        args: The worker's constructor arguments (the stage's parameters).
        made_by: ``video_uid -> dict`` describing what makes each output.
        local_in_flight: Videos in flight in-process, for a worker with
            ``submit`` (a plain worker runs one video at a time).

    Returns:
        The stage's :class:`VideoWork`.
    """
    on_changed = getattr(executor, "on_changed", "recompute")
    factory = partial(worker, *args)
    if executor.kind == "local":
        runner: _LocalRunner | _RayRunner = _LocalRunner(stage, factory)
        return VideoWork(payloads, runner, local_in_flight, made_by, on_changed)
    declared = (
        worker.resources(*args)
        if isinstance(worker, type) and issubclass(worker, StageWorker)
        else {}
    )
    settings = executor.ray.model_copy(update=declared)
    runner = _RayRunner(factory, settings)
    return VideoWork(payloads, runner, settings.max_in_flight, made_by, on_changed)
