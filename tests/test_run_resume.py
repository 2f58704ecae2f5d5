"""Runs an operator can trust: bad inputs, reruns, missing upstreams, overwrites."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from action100m.release.shards import read_release
from tests.pipelines.ingest.test_nodes import hostile_folder
from tests.test_run import kedro_run, mlflow_runs


def _metrics(tmp_path, run_name: str) -> list[dict[str, float]]:
    """The metrics of every MLflow run with this name, oldest first."""
    _, runs = mlflow_runs(tmp_path)
    return [r.data.metrics for r in runs if r.info.run_name == run_name]


@pytest.mark.slow
def test_a_folder_of_hostile_inputs_finishes_both_good_videos(
    tmp_path, cut_videos, tiny_models
):
    folder, good = hostile_folder(tmp_path, cut_videos[0] / "cuts_c.mp4")
    out = tmp_path / "out"
    params = ",".join(
        [
            f"videos_dir={folder}",
            f"output_dir={out}",
            f"captioning.plm.model_id={tiny_models['perception_lm']}",
            f"captioning.llama.model_id={tiny_models['mllama']}",
            f"aggregation.llm.model={tiny_models['gpt_oss']}",
            "aggregation.llm.rounds=1",
        ]
    )
    run = kedro_run(tmp_path, "--env", "demo", "--params", params)
    assert run.returncode == 0, run.stderr[-3000:]
    table = read_release(out)
    assert sorted(table.column("video_uid").to_pylist()) == sorted(good)
    errors = [json.loads(line) for line in (out / "errors.jsonl").open()]
    failed = {e["video_uid"] for e in errors if "node_id" not in e}
    assert failed == {  # every other input has its line
        "nan_time",
        "inf_time",
        "bad_types",
        "broken_srt",
        "linked_srt",
        "linked_video",
        "..mp4",
        "orphan.json",
        "empty",
        "latin1_caf\ufffd",
    }
    assert (out / "trees").is_dir() and len(list((out / "trees").glob("*.json"))) == 2


@pytest.mark.slow
def test_reruns_reuse_only_what_the_same_settings_made(tmp_path, cut_videos):
    folder, _ = cut_videos
    out = tmp_path / "out"
    params = f"videos_dir={folder},output_dir={out}"
    demo = ("--env", "demo", "--pipeline")

    # A stage run before its upstream stops before any work, naming both.
    early = kedro_run(tmp_path, *demo, "segmentation", "--params", params)
    assert early.returncode != 0
    assert "'video_manifest'" in early.stderr and "--pipeline ingest" in early.stderr
    assert not (out / "intermediate" / "frame_embeddings").exists()

    assert kedro_run(tmp_path, *demo, "ingest", "--params", params).returncode == 0
    for stride in (4, 8, 8):
        run = kedro_run(
            tmp_path,
            *demo,
            "segmentation",
            "--params",
            f"{params},segmentation.frame_stride={stride}",
        )
        assert run.returncode == 0, run.stderr[-3000:]
    record = json.loads(
        (
            out / "intermediate" / "frame_embeddings" / "_made_by" / "cuts_a.json"
        ).read_text()
    )
    assert record["settings"]["frame_stride"] == 8
    first, changed, same = _metrics(tmp_path, "segmentation@demo")
    assert first["outputs.intermediate_frame_embeddings.written"] == 3
    assert changed["outputs.intermediate_frame_embeddings.recomputed"] == 3
    # The trees are recomputed because their input changed.
    assert changed["outputs.intermediate_segment_trees.recomputed"] == 3
    assert same["outputs.intermediate_frame_embeddings.reused"] == 3
    assert same["outputs.intermediate_segment_trees.reused"] == 3
    assert same["outputs.intermediate_frame_embeddings.written"] == 0
    assert changed["segmentation.wall_s"] > same["segmentation.wall_s"]

    stop = kedro_run(
        tmp_path,
        *demo,
        "segmentation",
        "--params",
        f"{params},segmentation.frame_stride=2,executor.on_changed=stop",
    )
    assert stop.returncode != 0
    assert "settings.frame_stride: 8 -> 2" in stop.stderr

    parallel = kedro_run(
        tmp_path, *demo, "segmentation", "--params", params, "--runner=ParallelRunner"
    )
    assert parallel.returncode != 0
    assert "ParallelRunner is not supported" in parallel.stderr


@pytest.mark.slow
def test_reannotate_never_writes_over_what_it_reads(tmp_path, release_sample):
    out = tmp_path / "out"
    out.mkdir()
    target = out / "reannotated.parquet"
    shutil.copy(release_sample, target)
    before = target.read_bytes()
    run = kedro_run(
        tmp_path,
        "--pipeline",
        "reannotate",
        "--params",
        f"release_input={target},output_dir={out}",
    )
    assert run.returncode != 0
    assert "would overwrite 'release_input'" in run.stderr
    assert target.read_bytes() == before


def _stamps(folder) -> dict:
    return {p: p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_only_missing_outputs_reruns_what_is_missing_or_made_otherwise(
    tmp_path, cut_videos
):
    folder, _ = cut_videos
    out = tmp_path / "out"
    params = f"videos_dir={folder},output_dir={out}"
    assert (
        kedro_run(
            tmp_path, "--env", "demo", "--pipeline", "ingest", "--params", params
        ).returncode
        == 0
    )

    def run(*extra: str) -> dict:
        more = "".join(f",{p}" for p in extra)
        done = kedro_run(
            tmp_path,
            *("--env", "demo", "--pipeline", "segmentation", "--only-missing-outputs"),
            *("--params", params + more),
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return _stamps(out / "intermediate")

    first = run()
    trees = out / "intermediate" / "segment_trees"
    assert _shortest_leaf_s(trees) < 2.0

    # Batch sizes and prefetching change no output: nothing is rewritten.
    same = run(
        "segmentation.prefetch=0",
        "segmentation.decode_batch=5",
        "segmentation.embedder.batch_size=3",
    )
    assert same == first

    # A deleted output (with its record; the _SUCCESS marker stays) is made again,
    # and only that one: the same embeddings keep the tree made from them.
    embeddings = out / "intermediate" / "frame_embeddings"
    (embeddings / "cuts_a.npz").unlink()
    (embeddings / "_made_by" / "cuts_a.json").unlink()
    assert (embeddings / "_SUCCESS").exists()
    again = run()
    rewritten = {p.relative_to(out) for p in again if again[p] != first.get(p)}
    assert {p for p in rewritten if p.name != "_SUCCESS"} == {
        Path("intermediate/frame_embeddings/cuts_a.npz"),
        Path("intermediate/frame_embeddings/_made_by/cuts_a.json"),
    }

    # A changed tree setting remakes every tree, and no leaf is shorter than it.
    changed = run("segmentation.tree.min_segment_s=2.0")
    for uid in ("cuts_a", "cuts_b", "cuts_c"):
        assert changed[trees / f"{uid}.json"] != again[trees / f"{uid}.json"]
        assert changed[embeddings / f"{uid}.npz"] == again[embeddings / f"{uid}.npz"]
    assert _shortest_leaf_s(trees) >= 2.0 - 1e-3  # stored as float32


def _shortest_leaf_s(trees) -> float:
    shortest = float("inf")
    for path in trees.glob("*.json"):
        nodes = json.loads(path.read_text())["nodes"]
        parents = {n["parent_id"] for n in nodes}
        for node in nodes:
            if node["node_id"] not in parents:
                shortest = min(shortest, node["end"] - node["start"])
    return shortest
