"""The per-video fan-out: local and Ray give the same results; dead workers retry."""

from __future__ import annotations

import os
import threading
import time
from functools import partial
from pathlib import Path

import pytest

from action100m.core.errors import VideoFailure
from action100m.core.params import ExecutorParams
from action100m.runtime.executor import map_videos
from action100m.runtime.progress import (
    NODE_EVENTS,
    VideoProgress,
    node_reporter,
    track_videos,
)


class SquareWorker:
    """Squares numbers; dies (the whole process) the first time it sees ``die_on``."""

    def __init__(self, marker_dir: str, die_on: int | None = None) -> None:
        self.marker_dir = Path(marker_dir)
        self.die_on = die_on
        self.pid = os.getpid()

    def __call__(self, value: int) -> dict:
        marker = self.marker_dir / f"died-{value}"
        if value == self.die_on and not marker.exists():
            marker.write_text("once")
            os._exit(1)  # a crashed worker, not an exception
        return {"value": value * value, "pid": self.pid}


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _payloads(n: int) -> dict:
    items = {f"v{i}": (lambda i=i: i) for i in range(n)}
    items["failed"] = lambda: VideoFailure("failed", "ingest", "broken")
    return items


@pytest.mark.slow
def test_ray_and_local_give_the_same_results(ray_cluster, tmp_path):
    local = map_videos(
        "test",
        _payloads(6),
        partial(SquareWorker, str(tmp_path)),
        ExecutorParams(kind="local"),
    )
    remote = map_videos(
        "test",
        _payloads(6),
        partial(SquareWorker, str(tmp_path)),
        ExecutorParams.model_validate({"kind": "ray", "ray": {"workers": 2}}),
    )
    local_values = {uid: call() for uid, call in local.items()}
    got = {uid: remote[uid]() for uid in reversed(list(remote))}  # any order
    for uid, value in local_values.items():
        if isinstance(value, VideoFailure):
            assert got[uid] == value
        else:
            assert got[uid]["value"] == value["value"]
    pids = {v["pid"] for v in got.values() if isinstance(v, dict)}
    assert len(pids) == 2 and os.getpid() not in pids  # two actors did the work

    # A save that needs only some videos submits only those, however far ahead.
    needed = map_videos(
        "test",
        _payloads(6),
        partial(SquareWorker, str(tmp_path)),
        ExecutorParams.model_validate(
            {"kind": "ray", "ray": {"max_in_flight": 6, "num_cpus": 0}}
        ),
    )
    needed.plan(["v1", "v4"])
    assert [needed[u]()["value"] for u in ("v1", "v4")] == [1, 16]
    assert needed.submitted == ["v1", "v4"]


@pytest.mark.slow
def test_a_dead_worker_is_restarted_and_its_video_retried(ray_cluster, tmp_path):
    results = map_videos(
        "test",
        {f"v{i}": (lambda i=i: i) for i in range(6)},
        partial(SquareWorker, str(tmp_path), die_on=3),
        ExecutorParams.model_validate(
            {"kind": "ray", "ray": {"workers": 2, "max_retries": 2}}
        ),
    )
    got = {uid: call()["value"] for uid, call in results.items()}
    assert got == {f"v{i}": i * i for i in range(6)}  # none lost, none twice
    assert (tmp_path / "died-3").exists()  # the worker really died once


class HalfwayWorker:
    """Reports half of a video's 4 nodes, then waits for the test to let it end."""

    def __init__(self, marker_dir: str) -> None:
        self.marker = Path(marker_dir) / "go"

    def __call__(self, uid: str) -> dict:
        report = node_reporter(uid, "nodes")
        for done in range(3):
            report(done, 4)
        while not self.marker.exists():
            time.sleep(0.05)
        report(4, 4)
        return {"nodes": [{}] * 4}


@pytest.mark.slow
def test_per_node_progress_of_ray_workers_reaches_the_driver(ray_cluster, tmp_path):
    work = map_videos(
        "test",
        {"v": lambda: "v"},
        partial(HalfwayWorker, str(tmp_path)),
        ExecutorParams.model_validate({"kind": "ray", "ray": {"workers": 1}}),
    )
    progress = VideoProgress("captioning", 1, live=False)
    track_videos(work, progress, {})
    NODE_EVENTS.listen(work, progress)
    saving = threading.Thread(target=work["v"])
    saving.start()
    try:
        deadline = time.monotonic() + 120
        while progress.figures().get("nodes_done") != 2:
            assert time.monotonic() < deadline, "no per-node progress came back"
            time.sleep(0.1)
        # Halfway through the video, the driver knows it.
        assert progress.figures()["videos_done"] == 0
        assert progress.figures()["nodes_total"] == 4
    finally:
        (tmp_path / "go").write_text("")
        saving.join()
        NODE_EVENTS.forget(progress)
        progress.close()
    # The finished video counts all its nodes, whenever its last report comes.
    figures = progress.figures()
    assert figures["videos_done"] == 1
    assert figures["nodes_done"] == figures["nodes_total"] == 4
