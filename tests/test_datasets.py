"""The project's datasets: atomic writes, resume, failure records."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from kedro.io import DatasetError

from action100m.core.errors import VideoFailure
from action100m.core.schema import RELEASE_SCHEMA
from action100m.datasets import (
    JSONLinesDataset,
    ReleaseParquetDataset,
    VideoPartitionsDataset,
)


def test_partitions_skip_existing_and_route_failures(tmp_path):
    ds = VideoPartitionsDataset(path=str(tmp_path / "p"), format="npz")
    calls = []

    def work(uid):
        calls.append(uid)
        if uid == "bad":
            return VideoFailure(uid, "segmentation", "broken stream")
        return {"x": np.arange(3) + len(uid)}

    assert not ds.exists()
    ds.save({u: (lambda u=u: work(u)) for u in ["a", "bad", "ccc"]})
    assert not ds.exists()  # a video lacks its output: --only-missing-outputs reruns
    loaded = ds.load()
    assert loaded.failed == {"bad"}
    assert loaded["bad"]().reason == "broken stream"
    np.testing.assert_array_equal(loaded["ccc"]()["x"], [3, 4, 5])

    calls.clear()
    ds.save({u: (lambda u=u: work(u)) for u in ["a", "bad", "ccc"]})
    assert calls == ["bad"]  # finished videos are not recomputed
    ds.save({"bad": {"x": np.zeros(1)}})
    assert ds.load().failed == set()  # a later success clears the record
    assert ds.exists()
    assert not list((tmp_path / "p").rglob("*.tmp"))


def test_failed_write_leaves_no_partition(tmp_path):
    ds = VideoPartitionsDataset(path=str(tmp_path / "p"), format="json")

    def explode():
        raise RuntimeError("disk full")

    with pytest.raises(DatasetError, match="disk full|Failed while saving"):
        ds.save({"b": explode})
    assert not (tmp_path / "p").exists() or not list((tmp_path / "p").iterdir())
    # A value the format cannot hold is that video's failure, not the run's.
    ds.save({"a": {"value": object()}, "c": {"value": 1}})
    loaded = ds.load()
    assert loaded.failed == {"a"} and loaded["c"]() == {"value": 1}
    assert "cannot store the result" in loaded["a"]().reason
    assert not (tmp_path / "p" / "a.json").exists()
    with pytest.raises(DatasetError):
        ds.save({"../escape": {"x": 1}})


def test_release_parquet_streams_rows_and_jsonl_roundtrip(tmp_path):
    rows = (
        {"video_uid": f"v{i}", "metadata": {"title": "t"}, "nodes": []}
        for i in range(5)
    )
    ds = ReleaseParquetDataset(
        filepath=str(tmp_path / "r.parquet"), save_args={"rows_per_group": 2}
    )
    ds.save(rows)
    meta = pq.read_metadata(tmp_path / "r.parquet")
    assert meta.num_rows == 5 and meta.num_row_groups == 3
    assert ds.load().schema.equals(RELEASE_SCHEMA, check_metadata=False)
    ReleaseParquetDataset(filepath=str(tmp_path / "e.parquet")).save(iter(()))
    assert pq.read_table(tmp_path / "e.parquet").num_rows == 0

    jl = JSONLinesDataset(filepath=str(tmp_path / "x" / "e.jsonl"))
    assert jl.load() == []
    jl.save([{"a": "é"}, {"b": 2}])
    assert jl.load() == [{"a": "é"}, {"b": 2}]


def test_an_output_folder_that_cannot_take_files_stops_the_run(tmp_path):
    from action100m.core.errors import OutputWriteError, record_failure

    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the output folder should be")
    dataset = VideoPartitionsDataset(path=str(blocker / "trees"), format="json")
    with pytest.raises(DatasetError, match="is a file, not a folder. Nothing was"):
        dataset.save({"v1": lambda: {"nodes": []}})

    def write_inside_video_work():
        import fsspec

        from action100m.datasets.atomic import atomic_open

        with atomic_open(fsspec.filesystem("file"), str(blocker / "v2.json")) as f:
            f.write(b"{}")

    # Not one video's problem: it is raised through the per-video guard.
    with pytest.raises(OutputWriteError):
        record_failure("captioning", "v2", write_inside_video_work)
    assert blocker.read_text().startswith("a file")
