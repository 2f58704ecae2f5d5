"""The per-video fan-out: local and Ray give the same results; dead workers retry."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import pytest

from action100m.core.errors import VideoFailure
from action100m.core.params import ExecutorParams
from action100m.runtime.executor import map_videos


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
