"""Live progress: log lines with an ETA, a rich bar, MLflow metrics per video."""

from __future__ import annotations

import logging
import time

import pytest

from action100m.core.errors import VideoFailure
from action100m.runtime.progress import VideoProgress, count_nodes, track_videos


def _save(results: dict, done_before: set[str]) -> list:
    """What the partitioned dataset does: skip what exists, call the rest in order."""
    return [work() for uid, work in results.items() if uid not in done_before]


def _videos(seconds: dict[str, float]) -> dict:
    def work(uid: str, wait: float):
        time.sleep(wait)
        if uid == "bad":
            return VideoFailure(uid, "captioning", "broken")
        return {"captions": {f"{uid}-{i}": {} for i in range(5)}}

    return {uid: (lambda u=uid, w=wait: work(u, w)) for uid, wait in seconds.items()}


def test_log_lines_come_while_a_long_video_runs_and_carry_the_eta(caplog):
    caplog.set_level(logging.INFO, logger="action100m.runtime.progress")
    results = _videos({"old": 0.0, "a": 0.2, "long": 1.2, "bad": 0.1, "b": 0.2})
    progress = VideoProgress("captioning", len(results), line_every_s=0.3, live=False)
    track_videos(results, progress, {uid: 1800.0 for uid in results})
    _save(results, done_before={"old"})
    progress.close()

    lines = [r.getMessage() for r in caplog.records]
    assert all("ETA" in line for line in lines)
    # The timer writes while nothing finishes (the 1.2 s video), not only per video.
    during_long = [line for line in lines if line.startswith("captioning: 2/5")]
    assert len(during_long) >= 2
    assert lines[-1].startswith("captioning: 5/5 videos (100%, 1 resumed, 1 failed)")
    assert lines[-1].endswith("ETA 00:00:00")
    figures = progress.figures()
    assert figures["videos_done"] == 5 and figures["videos_failed"] == 1
    # Four videos ran here: 15 nodes, 2 video-hours, in the elapsed time.
    elapsed = figures["elapsed_s"]
    assert figures["nodes_per_s"] == pytest.approx(15 / elapsed, rel=0.05)
    assert figures["video_hours_per_hour"] == pytest.approx(
        4 * 1800 / elapsed, rel=0.05
    )


def test_eta_extrapolates_the_rate_of_the_videos_done_here():
    progress = VideoProgress("aggregation", 10, live=False)
    progress.skip(4)  # resumed: no time spent on them
    progress.finish_video(60.0, 3)
    time.sleep(0.3)
    progress.finish_video(60.0, 3)
    figures = progress.figures()
    progress.close()
    # 2 done in ~0.3 s, 4 left: ~0.6 s.
    assert figures["eta_s"] == pytest.approx(4 * figures["elapsed_s"] / 2, rel=0.05)
    assert 0.25 < figures["eta_s"] / 2 < 1.5


def test_mlflow_run_gets_the_figures_with_step_videos_done(tmp_path):
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        with mlflow.start_run() as run:
            results = _videos({"a": 0.05, "b": 0.05, "c": 0.05})
            progress = VideoProgress("captioning", 3, mlflow_every_s=0.0, live=False)
            track_videos(results, progress, {"a": 60.0, "b": 60.0, "c": 60.0})
            _save(results, done_before=set())
            progress.close()
        client = MlflowClient()
        history = client.get_metric_history(
            run.info.run_id, "progress.captioning.videos_done"
        )
        eta = client.get_metric_history(run.info.run_id, "progress.captioning.eta_s")
    finally:
        mlflow.set_tracking_uri(None)
    # Each video done is a step (the timer may add updates before the first).
    assert {1, 2, 3} <= {m.step for m in history} <= {0, 1, 2, 3}
    assert all(m.value == m.step for m in history)
    assert [m.value for m in eta if m.step == 3] and all(
        m.value == 0.0 for m in eta if m.step == 3
    )


def test_terminal_bar_shows_the_same_figures(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    progress = VideoProgress("segmentation", 2, live=True)
    progress.finish_video(30.0, 7)
    progress.finish_video(30.0, 9)
    progress.close()
    shown = capsys.readouterr().err
    assert "segmentation" in shown and "2/2" in shown
    assert "nodes/s" in shown and "video-h/h" in shown and "ETA" in shown


def test_nodes_are_counted_from_each_stage_result():
    assert count_nodes({"rounds": {"n1": [], "n2": []}, "annotations": {}}) == 2
    assert count_nodes({"captions": {"n1": {}}}) == 1
    assert count_nodes({"nodes": [{}, {}, {}]}) == 3
    assert count_nodes(VideoFailure("v", "segmentation", "broken")) == 0
