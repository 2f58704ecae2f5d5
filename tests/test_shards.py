"""Release shards: the export's incremental writer and every reader on shards."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from action100m.console import main
from action100m.core.params import DatasetCardParams
from action100m.core.schema import RELEASE_SCHEMA
from action100m.datasets import (
    FiftyOneDatasetDir,
    PartitionLoaders,
    ReleaseShardsDataset,
    ReleaseSourceDataset,
)
from action100m.pipelines.evaluation.nodes import evaluate_run
from action100m.pipelines.reannotate.nodes import merge_reannotated
from action100m.release.dataset_card import build_dataset_card, card_statistics
from action100m.release.quality import release_metrics
from action100m.release.resampling import action_instances
from action100m.release.shards import (
    ReleaseNotFound,
    ReleaseRows,
    open_release,
    read_release,
)
from action100m.release.stats import compute_stats
from action100m.release.validation import check_release


@pytest.fixture(scope="module")
def sample_rows(release_sample) -> list[dict]:
    return pq.read_table(release_sample).to_pylist()


@pytest.fixture(scope="module")
def preview(tmp_path_factory, sample_rows) -> Path:
    """The release sample cut into the published preview's layout: two rows in
    each of ``data/part-00000.parquet`` ... (three shards)."""
    folder = tmp_path_factory.mktemp("preview")
    (folder / "data").mkdir()
    for index in range(0, len(sample_rows), 2):
        table = pa.Table.from_pylist(sample_rows[index : index + 2], RELEASE_SCHEMA)
        pq.write_table(table, folder / "data" / f"part-{index // 2:05d}.parquet")
    return folder


def rows_of(rows: list[dict], limit: int = 2, size: int = 10**9, **kwargs):
    """``ReleaseRows`` of rows in memory, each fingerprinted by ``kwargs`` or "v1"."""
    by_uid = {r["video_uid"]: r for r in rows}
    return ReleaseRows(
        videos=[(uid, kwargs.get(uid, "v1")) for uid in by_uid],
        row=by_uid.__getitem__,
        shard_rows=limit,
        shard_bytes=size,
        single_file=kwargs.get("single_file", False),
    )


def stamps(folder: Path) -> dict[str, tuple[int, int]]:
    """``name -> (mtime_ns, bytes)`` of every shard."""
    return {
        p.name: (p.stat().st_mtime_ns, p.stat().st_size)
        for p in sorted(folder.glob("*.parquet"))
    }


def test_a_path_folder_or_glob_names_the_shards_in_row_order(
    preview, release_sample, sample_rows
):
    whole = pq.read_table(release_sample)
    for source in (preview, preview / "data", f"{preview}/data/part-*.parquet"):
        release = open_release(source)
        assert [Path(f).name for f in release.files] == [
            "part-00000.parquet",
            "part-00001.parquet",
            "part-00002.parquet",
        ]
        assert read_release(source).equals(whole)
        assert release.num_rows == len(sample_rows)
        assert release.video_uids() == [r["video_uid"] for r in sample_rows]
    assert open_release(release_sample).files == [str(release_sample)]
    # One video's row, found through the row groups' video_uid statistics.
    for row in sample_rows:
        assert open_release(preview).find(row["video_uid"]) == row
    assert open_release(preview).find("absent") is None
    with pytest.raises(ReleaseNotFound, match="no parquet files"):
        open_release(preview / "data" / "none-*.parquet")
    with pytest.raises(ReleaseNotFound, match="no such file"):
        open_release(preview / "missing")


def test_readers_agree_on_shards_one_file_and_a_table(
    preview, release_sample, sample_rows, tmp_path
):
    table = pq.read_table(release_sample)
    sources = (preview, release_sample, table)
    for reader in (compute_stats, release_metrics, card_statistics):
        results = [reader(s) for s in sources]
        assert results[0] == results[1] == results[2]
    reports = [check_release(s, strict=True) for s in sources]
    assert {(len(r.problems), r.videos, r.nodes) for r in reports} == {(3, 6, 2740)}
    instances = [action_instances(s) for s in sources]
    assert instances[0] == instances[1] == instances[2] and len(instances[0]) == 718
    cards = {build_dataset_card(s, DatasetCardParams()) for s in sources}
    assert len(cards) == 1
    # The evaluation node: the same metrics and index page from either.
    manifest = [{"video_uid": r["video_uid"], "duration": 60.0} for r in sample_rows]
    runs = []
    for source in (ReleaseSourceDataset(filepath=str(preview)).load(), release_sample):
        *found, pages = evaluate_run(
            source, PartitionLoaders(), PartitionLoaders(), manifest, [], _seg()
        )
        runs.append((*found, {name: render() for name, render in pages.items()}))
    assert runs[0] == runs[1]
    # Reannotate keeps the input's order whatever holds it.
    empty = PartitionLoaders()
    assert list(merge_reannotated(preview, empty, empty)[1]) == []
    assert open_release(preview).video_uids() == table.column("video_uid").to_pylist()


def _seg():
    from action100m.core.params import SegmentationParams

    return SegmentationParams()


def test_console_reads_a_folder_of_shards_as_it_reads_one_file(
    preview, release_sample, sample_rows, tmp_path, capsys
):
    uid = sample_rows[3]["video_uid"]
    for name, source in (("folder", preview), ("file", release_sample)):
        assert main(["stats", str(source), "--json"]) == 0
        stats = json.loads(capsys.readouterr().out)
        assert stats["videos"] == 6 and stats["nodes"] == 2740
        assert main(["validate", str(source)]) == 0
        assert "valid (6 videos, 2740 nodes; 3 without plm_caption)" in (
            capsys.readouterr().out
        )
        page = tmp_path / f"{name}.html"
        assert main(["view", str(source), "--video-uid", uid, "--out", str(page)]) == 0
        out = tmp_path / f"fo_{name}"
        assert main(["fiftyone", str(source), "--out", str(out), "--fps", "30"]) == 0
        assert "6 video samples, 746 annotated segments" in capsys.readouterr().out
    assert (tmp_path / "folder.html").read_text() == (
        tmp_path / "file.html"
    ).read_text()
    samples = [
        FiftyOneDatasetDir(path=str(tmp_path / f"fo_{name}")).load()
        for name in ("folder", "file")
    ]
    assert samples[0] == samples[1]
    folder_card = (tmp_path / "fo_folder" / "README.md").read_text()
    assert folder_card == (tmp_path / "fo_file" / "README.md").read_text()
    assert main(["view", str(preview), "--video-uid", "nope", "--out", "x.html"]) == 1
    assert main(["validate", str(preview / "missing")]) == 1


def test_shards_round_trip_equals_the_single_file_row_for_row(sample_rows, tmp_path):
    dataset = ReleaseShardsDataset(
        path=str(tmp_path / "data"), single_file=str(tmp_path / "one.parquet")
    )
    dataset.save(rows_of(sample_rows, limit=4, single_file=True))
    names = sorted(p.name for p in (tmp_path / "data").glob("*.parquet"))
    assert names == ["train-00000.parquet", "train-00001.parquet"]
    assert [pq.read_metadata(tmp_path / "data" / n).num_rows for n in names] == [4, 2]
    shards, single = read_release(tmp_path), read_release(tmp_path / "one.parquet")
    assert shards.equals(single) and shards.to_pylist() == sample_rows
    assert dataset.load().to_table().equals(shards)
    # Without the flag the copy goes, so none is left to go stale.
    dataset.save(rows_of(sample_rows, limit=4))
    assert not (tmp_path / "one.parquet").exists()
    # A byte limit closes a shard at the row group that reaches it.
    small = ReleaseShardsDataset(
        path=str(tmp_path / "small"), save_args={"rows_per_group": 1}
    )
    small.save(rows_of(sample_rows, limit=100, size=1))
    assert len(stamps(tmp_path / "small")) == 6
    assert read_release(tmp_path / "small").to_pylist() == sample_rows


def test_an_incremental_save_rewrites_only_the_shards_it_must(sample_rows, tmp_path):
    folder = tmp_path / "data"
    dataset = ReleaseShardsDataset(path=str(folder))
    dataset.save(rows_of(sample_rows[:4]))
    first = stamps(folder)
    assert list(first) == ["train-00000.parquet", "train-00001.parquet"]

    # Two more videos: one new shard, the others not touched.
    dataset.save(rows_of(sample_rows))
    second = stamps(folder)
    assert {n: second[n] for n in first} == first
    assert list(second) == [*first, "train-00002.parquet"]
    assert dataset.counts == {"written": 1, "reused": 2, "removed": 0}
    assert read_release(folder).to_pylist() == sample_rows

    # A changed video: its shard alone is rewritten, with the new row.
    changed = [dict(r) for r in sample_rows]
    uid = changed[2]["video_uid"]
    changed[2]["metadata"] = {**changed[2]["metadata"], "title": "a new title"}
    dataset.save(rows_of(changed, **{uid: "v2"}))
    third = stamps(folder)
    assert third["train-00001.parquet"] != second["train-00001.parquet"]
    assert {n: third[n] for n in third if n != "train-00001.parquet"} == {
        n: second[n] for n in second if n != "train-00001.parquet"
    }
    assert read_release(folder).to_pylist() == changed

    # Videos that went away: a shard loses its row, an emptied shard goes,
    # a stray parquet file (a cut-short save) goes; the rest stay as they were.
    (folder / "train-00009.parquet").write_bytes(b"left over")
    kept = [r for r in changed if r["video_uid"] not in _uids(sample_rows[:3])]
    dataset.save(rows_of(kept, **{uid: "v2"}))
    fourth = stamps(folder)
    assert list(fourth) == ["train-00001.parquet", "train-00002.parquet"]
    assert fourth["train-00002.parquet"] == third["train-00002.parquet"]
    assert dataset.counts == {"written": 1, "reused": 1, "removed": 2}
    assert read_release(folder).to_pylist() == kept
    index = json.loads((folder / "_shards.json").read_text())
    assert [s["videos"] for s in index["shards"]] == [
        [[r["video_uid"], "v1"]] for r in kept[:1]
    ] + [[[r["video_uid"], "v1"] for r in kept[1:]]]

    # Other shard limits: everything is cut again, under new names after the old.
    dataset.save(rows_of(kept, limit=5, **{uid: "v2"}))
    assert list(stamps(folder)) == ["train-00003.parquet"]
    assert read_release(folder).to_pylist() == kept


def _uids(rows: list[dict]) -> set[str]:
    return {r["video_uid"] for r in rows}


def test_hugging_face_datasets_loads_the_output_folder(sample_rows, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "out"
    ReleaseShardsDataset(path=str(out / "data")).save(rows_of(sample_rows, limit=4))
    card = build_dataset_card(out, DatasetCardParams(), shards=True)
    (out / "README.md").write_text(card)
    for stray in ("errors.jsonl", "resampled.parquet"):  # a run's other files
        (out / stray).write_text("not a release row")
    loaded = datasets.load_dataset(
        str(out), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert loaded.num_rows == len(sample_rows)
    assert loaded.with_format("arrow")[:].to_pylist() == sample_rows
