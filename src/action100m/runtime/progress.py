"""Live progress of the per-video stages: a bar, log lines with an ETA, MLflow.

``ProgressHook`` (registered in ``settings.py``) follows the per-video datasets
of the long stages while they are saved: each video's lazy work is wrapped so
that its end counts. Every stage shows videos done / total, nodes per second,
video-hours per hour and an ETA:

- on a terminal, as a rich progress bar;
- otherwise (CI, ``nohup``, a Ray driver's log), as a log line at least every
  ``line_every_s`` seconds, and once at the end;
- in the MLflow run as ``progress.<stage>.*`` metrics with step = videos done,
  every ``mlflow_every_s`` seconds and at the end, so the UI shows a live run.

Videos that the dataset skips because their output already exists (a resumed
run) count as done at once and do not enter the rates.

Long stages also report progress inside a video: a stage's worker tells
:data:`NODE_EVENTS` how many of a video's units are done (Stage 2:
tree nodes captioned; Stage 3: Self-Refine rounds settled) through
:func:`node_reporter`, so the line moves while a video runs and the ETA comes
from the rate of units. Workers in Ray actors forward their reports to the
driver, which reads them twice a second.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from kedro.framework.hooks import hook_impl

from action100m.core.errors import VideoFailure

logger = logging.getLogger(__name__)

# Per-video datasets of the long stages -> the stage they belong to.
TRACKED = {
    "intermediate_frame_embeddings": "embedding",
    "intermediate_segment_trees": "segmentation",
    "intermediate_captions": "captioning",
    "intermediate_annotations": "aggregation",
    "intermediate_reannotate_annotations": "reannotate",
}


def count_nodes(result: Any) -> int:
    """Tree nodes a stage's per-video result covers (0 for a failure)."""
    if isinstance(result, dict):
        for key in ("rounds", "captions", "nodes"):
            if isinstance(result.get(key), dict | list):
                return len(result[key])
    return 0


def format_duration(seconds: float | None) -> str:
    """``1d 02:03:04`` / ``02:03:04``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    text = f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{days}d {text}" if days else text


class VideoProgress:
    """Counts one stage's videos and reports rates and an ETA.

    Args:
        stage: The stage's name (in lines, the bar and metric names).
        total: Videos this save will go through.
        line_every_s: Longest gap between two log lines (no terminal).
        mlflow_every_s: Longest gap between two MLflow updates.
        live: Draw a rich bar (default: when stderr is a terminal).
        mlflow_run_id: The MLflow run to log to (default: the active one).
    """

    def __init__(
        self,
        stage: str,
        total: int,
        *,
        line_every_s: float = 30.0,
        mlflow_every_s: float = 10.0,
        live: bool | None = None,
        mlflow_run_id: str | None = None,
    ) -> None:
        self.stage = stage
        self.total = total
        self.done = self.failed = self.resumed = self.nodes = 0
        self.video_s = 0.0
        # Units inside videos (nodes, rounds), from the stage's workers: the
        # name, each running video's [done, total], units done in finished
        # videos, and the totals of every video that reported (to size the
        # videos not started yet).
        self.unit: str | None = None
        self._running: dict[str, list[int]] = {}
        self._units_finished = 0
        self._sizes: dict[str, int] = {}
        self._units_since: float | None = None  # the first report (models loaded)
        self._finished: set[str] = set()  # a late report of one is ignored
        self.line_every_s = line_every_s
        self.mlflow_every_s = mlflow_every_s
        self._lock = threading.Lock()
        self._report_lock = threading.Lock()
        self._start = time.monotonic()
        self._last_line = self._last_mlflow = self._start
        self._run_id = mlflow_run_id or _active_run_id()
        self._bar = _RichBar(stage, total) if _is_live(live) else None
        self._stop = threading.Event()
        self._timer = threading.Thread(target=self._tick, daemon=True)
        self._timer.start()

    # ----------------------------------------------------------------- counts
    def skip(self, count: int = 1) -> None:
        """Videos already done by an earlier run."""
        if count > 0:
            with self._lock:
                self.resumed += count
            self._report()

    def finish_video(
        self,
        video_s: float | None,
        nodes: int,
        failed: bool = False,
        video_uid: str | None = None,
    ) -> None:
        """One video finished here (``failed``: it became an error record)."""
        with self._lock:
            self.done += 1
            self.failed += failed
            self.nodes += nodes
            self.video_s += video_s or 0.0
            units = self._running.pop(video_uid, None) if video_uid else None
            if units is not None:  # all done, unless it failed (the last report
                # of a Ray worker may come after the result)
                self._units_finished += units[0] if failed else units[1]
            if video_uid:
                self._finished.add(video_uid)
        self._report()

    def video_units(self, video_uid: str, unit: str, done: int, total: int) -> None:
        """``done`` of ``total`` units (``unit``: nodes, rounds) of a running video."""
        with self._lock:
            if video_uid in self._finished:
                return
            self.unit = self.unit or unit
            if self._units_since is None:
                self._units_since = time.monotonic()
            known = self._running.setdefault(video_uid, [0, total])
            known[:] = [max(known[0], done), total]  # reports may cross threads
            self._sizes[video_uid] = total
        self._report()

    def _units(self) -> tuple[int, int, float] | None:
        """Units done, units known (videos started) and an estimate of the units
        left (videos not started sized like those seen); None before any report.
        Call with the lock held."""
        if not self._sizes:
            return None
        done = self._units_finished + sum(d for d, _ in self._running.values())
        known = done + sum(t - d for d, t in self._running.values())
        waiting = self.total - self.done - self.resumed - len(self._running)
        mean = sum(self._sizes.values()) / len(self._sizes)
        return done, known, known - done + max(waiting, 0) * mean

    # ---------------------------------------------------------------- figures
    def figures(self) -> dict[str, float | None]:
        """Videos done, failed, nodes/s, video-hours/hour, elapsed and ETA (s);
        with units reported, ``<unit>_done``, ``<unit>_total`` (of the videos
        started so far) and ``<unit>_done_per_s`` (since the first report, so
        model loading does not count), and the ETA from that rate."""
        with self._lock:
            elapsed = max(time.monotonic() - self._start, 1e-9)
            finished = self.done + self.resumed
            remaining = max(self.total - finished, 0)
            eta = remaining * elapsed / self.done if self.done else None
            units = self._units()
            if units is not None:
                unit_s = max(time.monotonic() - (self._units_since or 0.0), 1e-9)
                if units[0]:
                    eta = units[2] * unit_s / units[0]
            found: dict[str, float | None] = {
                "videos_done": finished,
                "videos_total": self.total,
                "videos_failed": self.failed,
                "nodes_per_s": self.nodes / elapsed,
                "video_hours_per_hour": self.video_s / elapsed,
                "elapsed_s": elapsed,
                "eta_s": 0.0 if not remaining else eta,
            }
            if units is not None:
                found[f"{self.unit}_done"], found[f"{self.unit}_total"] = units[:2]
                found[f"{self.unit}_done_per_s"] = units[0] / unit_s
            return found

    def _rates_text(self, figures: dict[str, Any]) -> str:
        """``57/135 nodes, 1.20 nodes/s`` once units are reported (their rate
        since the first report), else the tree nodes of the videos done per s."""
        unit = self.unit
        if unit is None or f"{unit}_done" not in figures:
            return f"{figures['nodes_per_s']:.2f} nodes/s"
        done, total = figures[f"{unit}_done"], figures[f"{unit}_total"]
        return f"{done}/{total} {unit}, {figures[f'{unit}_done_per_s']:.2f} {unit}/s"

    def line(self) -> str:
        """The figures as one log line."""
        f = self.figures()
        share = f["videos_done"] / self.total if self.total else 1.0
        extra = f", {self.resumed} resumed" if self.resumed else ""
        extra += f", {f['videos_failed']} failed" if f["videos_failed"] else ""
        return (
            f"{self.stage}: {f['videos_done']}/{self.total} videos ({share:.0%}"
            f"{extra}), {self._rates_text(f)}, "
            f"{f['video_hours_per_hour']:.2f} video-h/h, "
            f"elapsed {format_duration(f['elapsed_s'])}, "
            f"ETA {format_duration(f['eta_s'])}"
        )

    # -------------------------------------------------------------- reporting
    def _report(self, final: bool = False) -> None:
        with self._report_lock:  # the timer thread and the saving thread
            now = time.monotonic()
            if self._bar is not None:
                figures = self.figures()
                self._bar.update(figures, self._rates_text(figures))
            elif final or now - self._last_line >= self.line_every_s:
                self._last_line = now
                logger.info(self.line())
            if final or now - self._last_mlflow >= self.mlflow_every_s:
                self._last_mlflow = now
                self._log_mlflow()

    def _tick(self) -> None:
        period = max(min(self.line_every_s, self.mlflow_every_s) / 2, 0.05)
        while not self._stop.wait(period):
            self._report()

    def _log_mlflow(self) -> None:
        if self._run_id is None:
            return
        f = self.figures()
        step = int(f["videos_done"])
        metrics = {
            f"progress.{self.stage}.{key}": float(value)
            for key, value in f.items()
            if value is not None and key != "videos_total"
        }
        try:
            from mlflow import MlflowClient
            from mlflow.entities import Metric

            stamp = int(time.time() * 1000)
            MlflowClient().log_batch(
                self._run_id,
                metrics=[Metric(k, v, stamp, step) for k, v in metrics.items()],
            )
        except Exception as exc:  # noqa: BLE001 - progress must not fail a run
            logger.debug("progress metrics not logged: %s", exc)

    def close(self) -> None:
        """Stop the timer; a last line (or the bar's last state) and metrics."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._timer.join()
        self._report(final=True)
        if self._bar is not None:
            self._bar.close()
            logger.info(self.line())


class _RichBar:
    """A rich progress bar with the stage's figures beside it."""

    def __init__(self, stage: str, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("{task.fields[figures]}"),
            console=Console(stderr=True),
            transient=False,
        )
        self.task = self.progress.add_task(stage, total=total, figures="")
        self.progress.start()

    def update(self, figures: dict[str, Any], rates: str) -> None:
        self.progress.update(
            self.task,
            completed=figures["videos_done"],
            figures=(
                f"{rates} "
                f"{figures['video_hours_per_hour']:.2f} video-h/h "
                f"ETA {format_duration(figures['eta_s'])}"
            ),
        )

    def close(self) -> None:
        self.progress.stop()


def _is_live(live: bool | None) -> bool:
    return sys.stderr.isatty() if live is None else live


def _active_run_id() -> str | None:
    try:
        import mlflow

        run = mlflow.active_run()
        return run.info.run_id if run is not None else None
    except Exception:  # noqa: BLE001
        return None


def track_videos(
    results: dict[str, Any],
    progress: VideoProgress,
    durations: dict[str, float],
) -> None:
    """Wrap each lazy per-video result so that its end counts (in place).

    The dataset saves videos in the mapping's order and skips those already on
    disk without calling them, so calling video ``i`` means that the ones before
    it that were not called had been done by an earlier run. Work that tells
    which videos it will compute (the scheduler's ``plan``) has the others
    counted as done as soon as that is known.
    """
    position = {uid: index for index, uid in enumerate(results)}
    state = {"next": 0, "planned": False}

    def planned(uids: list[str]) -> None:
        state["planned"] = True
        progress.skip(len(position) - len(uids))

    if hasattr(results, "plan_listeners"):
        results.plan_listeners.append(planned)

    def wrap(uid: str, work: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            index = position[uid]
            if not state["planned"]:
                progress.skip(index - state["next"])
            state["next"] = max(state["next"], index + 1)
            result = work()
            seconds = durations.get(uid)
            if seconds is None and isinstance(result, dict):
                seconds = result.get("duration")
            progress.finish_video(
                seconds, count_nodes(result), isinstance(result, VideoFailure), uid
            )
            return result

        return run

    for uid, item in list(results.items()):
        if callable(item):
            results[uid] = wrap(uid, item)


class NodeEvents:
    """Progress inside the videos being computed in this process.

    Workers report ``(done, total)`` units of a video; the open
    :class:`VideoProgress` that follows the video hears it. In a Ray actor the
    reports are forwarded to the driver instead (see
    :mod:`action100m.runtime.executor`). Reports about a video nobody follows (a
    worker driven outside a ``kedro run``) are dropped.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: dict[str, VideoProgress] = {}
        self._forward: Callable[[str, str, int, int], None] | None = None

    def forward(self, send: Callable[[str, str, int, int], None] | None) -> None:
        """Send every report of this process to ``send`` (a Ray actor's)."""
        self._forward = send

    def listen(self, video_uids: Iterable[str], progress: VideoProgress) -> None:
        with self._lock:
            self._listeners.update(dict.fromkeys(video_uids, progress))

    def forget(self, progress: VideoProgress) -> None:
        with self._lock:
            for uid in [u for u, p in self._listeners.items() if p is progress]:
                del self._listeners[uid]

    def report(self, video_uid: str, unit: str, done: int, total: int) -> None:
        if self._forward is not None:
            self._forward(video_uid, unit, done, total)
            return
        with self._lock:
            listener = self._listeners.get(video_uid)
        if listener is not None:
            listener.video_units(video_uid, unit, done, total)


#: The per-node progress of this process's workers.
NODE_EVENTS = NodeEvents()


def node_reporter(video_uid: str, unit: str) -> Callable[[int, int], None]:
    """What a worker calls with ``(done, total)`` as one video's units get done.

    Args:
        video_uid: The video.
        unit: What is counted, plural (``nodes``, ``rounds``).
    """
    return partial(NODE_EVENTS.report, video_uid, unit)


class ProgressHook:
    """Shows the progress of every long stage while its videos are saved."""

    def __init__(self) -> None:
        self._durations: dict[str, float] = {}
        self._open: dict[str, VideoProgress] = {}

    @hook_impl
    def before_node_run(self, inputs: dict[str, Any]) -> None:
        manifest = inputs.get("video_manifest")
        if isinstance(manifest, list):
            self._durations = {
                v["video_uid"]: float(v.get("duration") or 0.0) for v in manifest
            }

    @hook_impl
    def before_dataset_saved(self, dataset_name: str, data: Any) -> None:
        stage = TRACKED.get(dataset_name)
        if stage is None or not isinstance(data, dict) or not data:
            return
        progress = VideoProgress(stage, len(data))
        self._open[dataset_name] = progress
        track_videos(data, progress, self._durations)
        NODE_EVENTS.listen(data, progress)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str) -> None:
        progress = self._open.pop(dataset_name, None)
        if progress is not None:
            NODE_EVENTS.forget(progress)
            progress.skip(progress.total - progress.done - progress.resumed)
            progress.close()

    @hook_impl
    def on_pipeline_error(self) -> None:
        for progress in self._open.values():
            NODE_EVENTS.forget(progress)
            progress.close()
        self._open.clear()
