"""Resume: a rerun computes exactly what is missing or was made otherwise."""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future

import pytest
from kedro.io import DatasetError
from pydantic import BaseModel

from action100m.core.params import (
    AggregationParams,
    ExecutorParams,
    TreeParams,
    setting,
)
from action100m.datasets import VideoPartitionsDataset
from action100m.datasets.partitions import MAX_NAME_BYTES, partition_name
from action100m.runtime.executor import map_videos
from action100m.runtime.fingerprint import made_by, stage_identity


class CountingWorker:
    """Doubles numbers in a thread, several at once, and records every video."""

    def __init__(self, seen: list[int]) -> None:
        self.seen = seen

    def submit(self, value: int) -> Future:
        self.seen.append(value)
        future: Future = Future()
        threading.Thread(target=lambda: future.set_result({"v": 2 * value})).start()
        return future


class Doubling(BaseModel):
    factor: int = setting(2, "What every number is multiplied by.")


def _work(seen, uids, settings=None, executor=None):
    identity = stage_identity("double", Doubling(**(settings or {})))
    return map_videos(
        "double",
        {uid: (lambda i=i: i) for i, uid in enumerate(uids)},
        lambda: CountingWorker(seen),
        executor or ExecutorParams(),
        made_by=lambda uid: made_by(identity, {"input": uid}),
        local_in_flight=4,
    )


def test_a_rerun_submits_only_the_videos_without_output(tmp_path):
    uids = [f"v{i}" for i in range(6)]
    ds = VideoPartitionsDataset(path=str(tmp_path / "out"))
    seen: list[int] = []
    ds.save(_work(seen, uids))
    assert sorted(seen) == list(range(6))
    assert ds.counts == {"written": 6, "recomputed": 0, "reused": 0, "failed": 0}

    (tmp_path / "out" / "v2.json").unlink()
    seen.clear()
    ds.save(_work(seen, uids))
    assert seen == [2]  # the look-ahead never reaches videos that are done
    assert ds.counts == {"written": 1, "recomputed": 0, "reused": 5, "failed": 0}
    assert ds.load()["v2"]() == {"v": 4}


def test_outputs_made_with_other_settings_are_recomputed_or_stop_the_run(tmp_path):
    uids = ["a", "b", "c"]
    ds = VideoPartitionsDataset(path=str(tmp_path / "out"))
    seen: list[int] = []
    ds.save(_work(seen, uids, {"factor": 2}))
    record = json.loads((tmp_path / "out" / "_made_by" / "b.json").read_text())
    assert record["video_uid"] == "b" and record["settings"] == {"factor": 2}

    stop = ExecutorParams(on_changed="stop")
    seen.clear()
    with pytest.raises(DatasetError, match=r"settings\.factor: 2 -> 3"):
        ds.save(_work(seen, uids, {"factor": 3}, stop))
    assert seen == []  # stopped before any work

    ds.save(_work(seen, uids, {"factor": 3}))
    assert sorted(seen) == [0, 1, 2]
    assert ds.counts["recomputed"] == 3 and ds.counts["reused"] == 0
    seen.clear()
    ds.save(_work(seen, uids, {"factor": 3}))
    assert seen == [] and ds.counts["reused"] == 3

    # An output from before records existed is treated as made otherwise.
    (tmp_path / "out" / "_made_by" / "a.json").unlink()
    ds.save(_work(seen, uids, {"factor": 3}))
    assert seen == [0] and ds.counts["recomputed"] == 1


def test_operational_settings_do_not_change_the_fingerprint():
    fast = AggregationParams.model_validate({"llm": {"max_concurrency": 64}})
    slow = AggregationParams.model_validate({"llm": {"max_concurrency": 1}})
    other = AggregationParams.model_validate({"llm": {"temperature": 0.7}})

    def fingerprint(params):
        identity = stage_identity("aggregation", params, "aggregation", "p1")
        return made_by(identity, {"up": "x"})["fingerprint"]

    assert fingerprint(fast) == fingerprint(slow) != fingerprint(other)


def test_long_video_names_get_bounded_unique_partition_names(tmp_path):
    title = "長い動画の題名" * 12  # 84 CJK characters, 252 bytes in UTF-8
    other = "長い動画の題名" * 11 + "別の動画"  # same first 200 bytes
    ds = VideoPartitionsDataset(path=str(tmp_path / "out"), format="npz")
    ds.save({title: {"x": [1]}, other: {"x": [2]}, "short": {"x": [3]}})
    names = {partition_name(title), partition_name(other)}
    assert len(names) == 2
    assert all(MAX_NAME_BYTES < len(n.encode()) <= 220 for n in names)
    loaded = ds.load()
    assert set(loaded) == {title, other, "short"}
    assert loaded[other]()["x"].tolist() == [2]
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_aggregation_rerun_sends_requests_for_the_missing_video_only(tmp_path):
    from action100m.pipelines.aggregation.nodes import annotate_segment_trees
    from tests.openai_server import FakeOpenAIServer, annotation_answer
    from tests.pipelines.aggregation.test_prompts import captioned_tree

    uids = ["alpha", "bravo", "charlie"]
    trees = VideoPartitionsDataset(path=str(tmp_path / "trees"))

    def save_trees(titles: dict[str, str]) -> None:
        made = {u: captioned_tree(u, {"title": t}).to_dict() for u, t in titles.items()}
        trees.save(
            map_videos(
                "segmentation",
                {u: (lambda u=u: made[u]) for u in made},
                lambda: lambda tree: tree,
                ExecutorParams(),
                made_by=lambda u: made_by({"stage": "trees"}, {"title": titles[u]}),
            )
        )

    save_trees({u: f"Video {u}" for u in uids})
    manifest = [
        {"video_uid": u, "path": f"{u}.mp4", "metadata": {"title": f"Video {u}"}}
        for u in uids
    ]
    annotations = VideoPartitionsDataset(path=str(tmp_path / "annotations"))
    captions = VideoPartitionsDataset(path=str(tmp_path / "captions")).load()

    def run(cache: str) -> list[dict]:
        with FakeOpenAIServer(annotation_answer) as server:
            params = AggregationParams.model_validate(
                {
                    "llm": {"base_url": server.base_url, "rounds": 1},
                    "videos_in_flight": 3,
                }
            )
            params.llm.cache_dir = str(tmp_path / cache)
            annotations.save(
                annotate_segment_trees(
                    trees.load(), captions, manifest, params, ExecutorParams()
                )
            )
            return list(server.requests)

    first = run("cache1")
    assert first and {u for u in uids if any(u in json.dumps(r) for r in first)} == set(
        uids
    )
    (tmp_path / "annotations" / "bravo.json").unlink()
    again = run("cache2")  # a fresh cache: every request reaches the server
    assert again and all("Video bravo" in json.dumps(r) for r in again)
    assert not any("Video alpha" in json.dumps(r) for r in again)
    assert annotations.counts == {
        "written": 1,
        "recomputed": 0,
        "reused": 2,
        "failed": 0,
    }

    # A recomputed tree makes its annotations stale: they are redone.
    save_trees({"charlie": "Video charlie, edited"})
    later = run("cache3")
    assert later and all("Video charlie, edited" in json.dumps(r) for r in later)
    assert annotations.counts["recomputed"] == 1


def test_min_segment_s_states_its_range():
    assert TreeParams(min_segment_s=0.25).min_segment_s == 0.25
    with pytest.raises(ValueError, match="greater than 0"):
        TreeParams(min_segment_s=0)
    with pytest.raises(ValueError, match="less than or equal to 3600"):
        TreeParams(min_segment_s=7200)
