"""Live progress: log lines with an ETA, a rich bar, MLflow metrics per video."""

from __future__ import annotations

import logging
import re
import time

import pytest

from action100m.core.errors import VideoFailure
from action100m.core.params import AggregationParams, ExecutorParams
from action100m.datasets import PartitionLoaders
from action100m.media.video import VideoSource
from action100m.models.llm.refine import eligible_nodes
from action100m.pipelines.aggregation.nodes import annotate_trees
from action100m.pipelines.captioning.nodes import caption_trees
from action100m.runtime.executor import map_videos
from action100m.runtime.progress import (
    NODE_EVENTS,
    VideoProgress,
    count_nodes,
    track_videos,
)
from tests.openai_server import FakeOpenAIServer, annotation_answer
from tests.pipelines.aggregation.test_prompts import captioned_tree
from tests.pipelines.captioning.test_captioners import _captioning_params
from tests.pipelines.segmentation.test_nodes import _tree, _video

PROGRESS_LOGGER = "action100m.runtime.progress"


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


def test_eta_follows_the_units_of_running_videos_before_any_video_ends():
    progress = VideoProgress("captioning", 3, live=False)
    progress.video_units("a", "nodes", 10, 20)
    progress.video_units("b", "nodes", 0, 20)
    progress.video_units("a", "nodes", 9, 20)  # a late report never goes back
    figures = progress.figures()
    line = progress.line()
    progress.close()
    assert figures["videos_done"] == 0
    assert (figures["nodes_done"], figures["nodes_total"]) == (10, 40)
    # 10 and 20 left in a and b, and the third video sized like them: 50 units
    # left at the rate of the 10 done.
    assert figures["eta_s"] == pytest.approx(50 / figures["nodes_done_per_s"])
    assert line.startswith("captioning: 0/3 videos (0%), 10/40 nodes, ")
    assert "ETA ?" not in line


def test_videos_the_save_will_not_compute_count_as_done_at_once():
    payloads = {uid: (lambda u=uid: u) for uid in ("a", "b", "c")}
    work = map_videos("s", payloads, lambda: str.upper, ExecutorParams())
    progress = VideoProgress("segmentation", 3, live=False)
    track_videos(work, progress, {})
    work.plan(["c"])  # what the dataset does when a and b exist
    assert progress.figures()["videos_done"] == 2
    assert work["c"]() == "C"
    progress.close()
    assert progress.figures()["videos_done"] == 3 and progress.resumed == 2


class _Lines(logging.Handler):
    """The progress logger's messages (kept when the root handlers are replaced,
    as Kedro's logging setup does when MLflow first loads its plugins)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _lines_while_saving(work, stage: str) -> list[str]:
    """Save ``work`` as the dataset does, under a progress that logs every report."""
    logger, found = logging.getLogger(PROGRESS_LOGGER), _Lines()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(found)
    progress = VideoProgress(stage, len(work), line_every_s=0.0, live=False)
    track_videos(work, progress, {})
    NODE_EVENTS.listen(work, progress)
    try:
        for uid in list(work):
            work[uid]()
    finally:
        NODE_EVENTS.forget(progress)
        progress.close()
        logger.removeHandler(found)
        logger.setLevel(level)
    return found.lines


def _units(lines: list[str], videos: str, unit: str) -> list[tuple[int, int]]:
    """``(done, total)`` units of the lines that show ``videos`` videos done."""
    pattern = re.compile(rf": {videos} videos \(\d+%\), (\d+)/(\d+) {unit}, ")
    found = [pattern.search(line) for line in lines]
    return [(int(m[1]), int(m[2])) for m in found if m]


def test_captioning_reports_nodes_while_its_video_runs(cut_videos):
    folder, _ = cut_videos
    video, tree = _video(folder, "cuts_c"), _tree(folder, "cuts_c")
    assert len(tree.nodes) >= 5
    with FakeOpenAIServer() as server:
        server.default = "sleep:0.02"
        work = caption_trees(
            PartitionLoaders({"cuts_c": tree.to_dict}),
            [video],
            [VideoSource("cuts_c", video["path"])],
            _captioning_params(server.base_url, max_concurrency=2),
            ExecutorParams(),
        )
        lines = _lines_while_saving(work, "captioning")
    during = _units(lines, "0/1", "nodes")
    nodes = len(tree.nodes)
    assert {total for _, total in during} == {nodes}
    moving = [done for done, _ in during if 0 < done < nodes]
    assert len(set(moving)) >= 3 and moving == sorted(moving)
    # The ETA comes from the rate of nodes once one is done.
    for line in lines:
        if any(done for done, _ in _units([line], "0/1", "nodes")):
            assert "ETA ?" not in line, line
    assert _units(lines, "1/1", "nodes")[-1] == (nodes, nodes)


def test_aggregation_reports_rounds_while_its_video_runs():
    tree = captioned_tree("packing", {"title": "Packing"})
    params = AggregationParams.model_validate(
        {"llm": {"rounds": 3, "max_concurrency": 2, "backoff_s": 0.0}}
    )
    with FakeOpenAIServer(annotation_answer) as server:
        server.default = "sleep:0.02"
        params.llm.base_url = server.base_url
        work = annotate_trees(
            {"packing": lambda: tree}, params, ExecutorParams(), lambda uid: {}
        )
        lines = _lines_while_saving(work, "aggregation")
    rounds = 3 * len(eligible_nodes(tree))
    during = _units(lines, "0/1", "rounds")
    assert {total for _, total in during} == {rounds}
    assert len({done for done, _ in during if 0 < done < rounds}) >= 3
    assert _units(lines, "1/1", "rounds")[-1] == (rounds, rounds)
