"""The whole project as a user runs it: ``kedro run --env demo`` on real footage."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from action100m.core.schema import RELEASE_SCHEMA
from action100m.datasets.partitions import DONE_MARKER
from action100m.release.shards import read_release
from action100m.release.validation import table_violations
from action100m.runtime.run_record import RUN_CONFIG_FILE
from action100m.runtime.tracking import stored_bytes

ROOT = Path(__file__).resolve().parents[1]
KEDRO = str(Path(sys.executable).with_name("kedro"))


def run_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a test's ``kedro run``: its own MLflow store.

    Its artifacts follow the store into ``tmp_path/mlartifacts``.
    """
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_ARTIFACT_LOCATION"}
    return {
        **env,
        "KEDRO_DISABLE_TELEMETRY": "1",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }


def mlflow_runs(tmp_path: Path):
    """The MLflow client of a test's store (see :func:`run_env`) and its
    ``action100m`` runs, oldest first."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs(
        [client.get_experiment_by_name("action100m").experiment_id],
        order_by=["attributes.start_time ASC"],
    )
    return client, runs


def project_files() -> set[Path]:
    """Files of the project folder that a run could leave behind."""
    return {
        p
        for folder in ("mlruns", "mlartifacts", ".viz", "build", "data")
        for p in (ROOT / folder).rglob("*")
        if p.is_file()
    } | set(ROOT.glob("*"))


def kedro_run(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [KEDRO, "run", *args],
        cwd=ROOT,
        env=env or run_env(tmp_path),
        capture_output=True,
        text=True,
        errors="replace",  # logs may quote file names that are not UTF-8
        timeout=600,
        check=False,
    )


def tiny_model_params(tiny_models) -> str:
    """``--params`` that point the demo's models at the tests' tiny ones."""
    return (
        f"captioning.plm.model_id={tiny_models['perception_lm']},"
        f"captioning.llama.model_id={tiny_models['mllama']},"
        f"aggregation.llm.model={tiny_models['gpt_oss']}"
    )


@pytest.fixture
def model_params(tiny_models) -> str:
    return tiny_model_params(tiny_models)


@pytest.fixture
def videos(tmp_path, cut_videos):
    folder, cuts = cut_videos
    target = tmp_path / "videos"
    shutil.copytree(folder, target)
    (target / "broken.mp4").write_bytes(b"\x00" * 100)
    return target, cuts


@dataclass
class DemoRun:
    tmp: Path
    out: Path
    params: str
    cuts: dict
    table: pa.Table
    new_project_files: set


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, cut_videos, tiny_models) -> DemoRun:
    """One ``kedro run --env demo`` over three cut videos and a broken file, shared
    by the tests below (each checks one behaviour of it)."""
    folder, cuts = cut_videos
    tmp = tmp_path_factory.mktemp("demo_run")
    videos = tmp / "videos"
    shutil.copytree(folder, videos)
    (videos / "broken.mp4").write_bytes(b"\x00" * 100)
    out = tmp / "out"
    models = tiny_model_params(tiny_models)
    params = f"videos_dir={videos},output_dir={out},{models}"
    before = project_files()
    run = kedro_run(tmp, "--env", "demo", "--params", params)
    assert run.returncode == 0, run.stderr[-3000:]
    return DemoRun(
        tmp, out, params, cuts, read_release(out),
        project_files() - before,
    )  # fmt: skip


def _mlflow_run(demo: DemoRun):
    client, runs = mlflow_runs(demo.tmp)
    return client, runs[0]


@pytest.mark.slow
def test_demo_run_writes_release_files(demo_run):
    table, out, cuts = demo_run.table, demo_run.out, demo_run.cuts
    assert table.schema.equals(RELEASE_SCHEMA, check_metadata=False)
    assert sorted(table.column("video_uid").to_pylist()) == sorted(cuts)
    # Every field wherever the release has it: captions and gpt (noise text).
    assert table_violations(table, strict=True) == []
    row = table.to_pylist()[0]
    assert row["metadata"]["title"] == f"Video {row['video_uid']}"
    for uid in cuts:
        tree_json = json.loads((out / "trees" / f"{uid}.json").read_text())
        assert tree_json["video_uid"] == [uid]
    errors = [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()]
    assert [(e["video_uid"], e["stage"]) for e in errors] == [("broken", "ingest")]
    # The release is shards in the Hub layout, and no single file by default.
    assert [p.name for p in (out / "data").glob("*.parquet")] == ["train-00000.parquet"]
    assert not (out / "action100m.parquet").exists()


@pytest.mark.slow
def test_hugging_face_datasets_loads_the_demo_run(demo_run, tmp_path):
    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset(
        str(demo_run.out), split="train", cache_dir=str(tmp_path / "hf_cache")
    )
    assert loaded.with_format("arrow")[:].to_pylist() == demo_run.table.to_pylist()


@pytest.mark.slow
def test_demo_run_writes_nothing_into_the_project(demo_run):
    assert demo_run.new_project_files == set()


@pytest.mark.slow
def test_demo_run_writes_viewers_index_and_fiftyone_export(demo_run):
    out, cuts = demo_run.out, demo_run.cuts
    for uid in cuts:
        page = (out / "viewer" / f"{uid}.html").read_text()
        assert page.startswith("<!DOCTYPE html>")
        assert (out / "timelines" / f"{uid}.png").read_bytes()[:4] == b"\x89PNG"
    index = (out / "index.html").read_text()
    assert '"video_uid": "broken", "stage": "ingest"' in index
    assert '"index/videos-00001.html"' in index
    listing = (out / "index" / "videos-00001.html").read_text()
    for uid in cuts:
        assert f'"viewer": "../viewer/{uid}.html"' in listing
    samples = json.loads((out / "fiftyone" / "samples.json").read_text())["samples"]
    assert sorted(s["video_uid"] for s in samples) == sorted(cuts)
    for sample, row in zip(samples, demo_run.table.to_pylist(), strict=True):
        gpt_nodes = [n["node_id"] for n in row["nodes"] if n["gpt"] is not None]
        found = [d["node_id"] for d in sample["gpt_summary_brief"]["detections"]]
        assert sample["video_uid"] == row["video_uid"] and found == gpt_nodes


@pytest.mark.slow
def test_demo_run_is_one_finished_mlflow_run_with_every_parameter(demo_run):
    _, run = _mlflow_run(demo_run)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "__default__@demo"
    logged = run.data.params
    # every parameter under its own flattened key, comparable across runs
    assert logged["captioning.plm.batch_size"] == "8"
    assert logged["segmentation.embedder.window"] == "1"
    assert logged["aggregation.prompt.template"] == "conf/base/prompts/stage3.yml"
    assert "segmentation" not in logged and "captioning" not in logged
    for role in ("plm", "llama", "llm"):
        assert logged[f"model.{role}.revision"].startswith("sha256:")
    assert logged["model.plm.id"].endswith("perception_lm")


def _run_of_record(demo: DemoRun):
    """The run record beside the outputs, and the MLflow run it names."""
    record = json.loads((demo.out / RUN_CONFIG_FILE).read_text())
    client, runs = mlflow_runs(demo.tmp)
    (run,) = [r for r in runs if r.info.run_id == record["mlflow_run_id"]]
    return record, client, run


@pytest.mark.slow
def test_demo_run_records_every_setting_beside_the_outputs_and_in_mlflow(demo_run):
    from action100m.models.llm.prompts import load_prompt_template

    record, client, run = _run_of_record(demo_run)
    logged = run.data.params
    flat = record["parameters_flat"]
    # Every parameter after overrides, under the keys and values MLflow has.
    assert len(flat) > 100
    assert {key: str(value) for key, value in flat.items()} == {
        key: logged[key] for key in flat
    }
    assert flat["output_dir"] == str(demo_run.out)
    assert record["parameters"]["captioning"]["plm"]["batch_size"] == 8
    template = record["parameters"]["aggregation"]["prompt"]["template"]
    assert record["prompt"] == {
        "template": template,
        "hash": load_prompt_template(ROOT / template).hash(),
    }
    assert record["prompt"]["hash"] == logged["prompt.aggregation_hash"]
    for role in ("plm", "llama", "llm"):
        assert record["models"][role]["revision"] == logged[f"model.{role}.revision"]
    assert record["kedro_env"] == "demo"
    assert record["command"]["pipeline_names"] == ["__default__"]
    assert record["command"]["runner"].endswith(".SequentialRunner")
    assert record["command"]["runtime_params"]["output_dir"] == str(demo_run.out)
    for package in ("action100m", "kedro", "transformers", "torch", "mlflow"):
        assert record["packages"][package] == run.data.tags[f"version.{package}"]
    assert record["git_commit"] == run.data.tags["git_commit"]
    assert record["started_at"].endswith("+00:00")
    # The same document is the MLflow run's artifact.
    folder = client.download_artifacts(run.info.run_id, RUN_CONFIG_FILE)
    assert json.loads(Path(folder).read_text()) == record


@pytest.mark.slow
def test_demo_run_logs_stage_costs_quality_and_work(demo_run):
    _, run = _mlflow_run(demo_run)
    metrics = run.data.metrics
    for stage in ("ingest", "segmentation", "captioning", "aggregation", "export"):
        assert metrics[f"{stage}.gpu_hours"] == 0.0  # a CPU run
        assert metrics[f"{stage}.wall_s"] > 0
        assert f"{stage}.cpu_hours" in metrics
    assert metrics["quality_metrics.invariant_pass_rate"] == 1.0
    assert metrics["quality_metrics.boundary_recall_any_level"] >= 0.99
    assert metrics["quality_metrics.llm_first_attempt_valid_rate"] == 1.0
    for rate in ("videos_per_s", "nodes_per_s", "llm_requests_per_s"):
        assert metrics[rate] > 0
    assert metrics["video_hours_per_wall_hour"] > 0
    # What each model did, and per video-hour (a CPU run counts too).
    for role in ("embedder", "plm", "llama", "llm"):
        assert metrics[f"work.{role}.calls"] > 0
        assert metrics[f"work.{role}.calls_per_video_hour"] > 0
    for role in ("plm", "llama", "llm"):
        assert metrics[f"work.{role}.prompt_tokens"] > 0
        assert metrics[f"work.{role}.generated_tokens"] > 0
    # The captioners' engines count their decoding work (a row refilled as soon
    # as its answer ends: every paid row-step makes a token while requests wait).
    for role in ("plm", "llama"):
        for counter in ("decode_steps", "prefill_tokens", "vision_frames"):
            assert metrics[f"work.{role}.{counter}"] > 0, (role, counter)
        if metrics[f"work.{role}.slot_steps"]:
            assert metrics[f"work.{role}.slot_occupancy"] > 0.9
    summary = json.loads((demo_run.out / "run_summary.json").read_text())
    assert summary["metrics"]["videos"] == 3
    # One vision pass of 32 frames per node: caption and action share it.
    assert metrics["work.plm.frames"] == 32 * summary["metrics"]["nodes"]
    # The summary file carries the same counters (`action100m estimate-cost --from`).
    assert summary["work"] == pytest.approx(
        {k: v for k, v in metrics.items() if k.startswith("work.")}
    )
    # Bytes on disk per video-hour of every intermediate and of the release.
    out, hours = demo_run.out, summary["metrics"]["video_hours"]
    for name, path in (
        ("intermediate_frame_embeddings", out / "intermediate" / "frame_embeddings"),
        ("intermediate_annotations", out / "intermediate" / "annotations"),
        ("release_parquet", out / "data"),
    ):
        stored = metrics[f"storage.{name}_bytes_per_video_hour"]
        assert stored == pytest.approx(stored_bytes(str(path)) / hours), name


@pytest.mark.slow
def test_demo_run_artifacts_sit_beside_the_tracking_store(demo_run):
    client, run = _mlflow_run(demo_run)
    assert run.info.artifact_uri.startswith((demo_run.tmp / "mlartifacts").as_uri())
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"run_summary.json", "errors.jsonl", "timelines"} <= artifacts
    timelines = client.list_artifacts(run.info.run_id, "timelines")
    assert sorted(a.path for a in timelines) == [
        f"timelines/{u}.png" for u in sorted(demo_run.cuts)
    ]


@pytest.mark.slow
def test_a_rerun_recomputes_only_the_deleted_tree(demo_run):
    out = demo_run.out
    partitions = sorted((out / "intermediate").rglob("*.npz")) + sorted(
        (out / "intermediate").rglob("*.json")
    )
    partitions += sorted((out / "data").glob("*.parquet"))  # the release shards
    partitions += sorted((out / "trees").glob("*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in partitions}
    (out / "intermediate" / "segment_trees" / "cuts_b.json").unlink()
    second = kedro_run(demo_run.tmp, "--env", "demo", "--params", demo_run.params)
    assert second.returncode == 0, second.stderr[-3000:]
    for path, stamp in stamps.items():
        if path.name != "cuts_b.json":
            assert path.stat().st_mtime_ns == stamp, path
    # Its captions were kept: the same tree gives the same node ids.
    assert (out / "intermediate" / "segment_trees" / "cuts_b.json").exists()
    captions = out / "intermediate" / "captions" / "cuts_b.json"
    assert captions.stat().st_mtime_ns == stamps[captions]
    assert read_release(out).equals(demo_run.table)


# Reruns in the demo run's folder come after the tests that read its first run.
@pytest.mark.slow
def test_an_only_missing_outputs_rerun_logs_every_parameter(demo_run):
    _, first = _mlflow_run(demo_run)
    again = kedro_run(
        demo_run.tmp,
        *("--env", "demo", "--only-missing-outputs", "--params", demo_run.params),
    )
    assert again.returncode == 0, again.stderr[-3000:]
    record, _, rerun = _run_of_record(demo_run)
    assert rerun.info.run_id != first.info.run_id  # the latest run's record
    assert record["command"]["only_missing_outputs"] is True
    assert set(rerun.data.params) == set(first.data.params)
    assert rerun.data.params == first.data.params


@pytest.mark.slow
def test_resampling_and_the_notebook_read_the_run(demo_run):
    out = demo_run.out
    before = project_files()
    resample = kedro_run(
        demo_run.tmp, "--env", "demo", "--pipeline", "resampling",
        "--params", f"output_dir={out}",
    )  # fmt: skip
    assert resample.returncode == 0, resample.stderr[-3000:]
    selection = pq.read_table(out / "resampled.parquet").to_pylist()
    annotated = {
        (r["video_uid"], n["node_id"])
        for r in demo_run.table.to_pylist()
        for n in r["nodes"]
        if n["gpt"] is not None and n["gpt"]["action"]["brief"] != "N/A"
    }
    assert (
        selection and {(s["video_uid"], s["node_id"]) for s in selection} <= annotated
    )
    execute_notebook(out)
    assert project_files() - before == set()  # nothing left in the project


def execute_notebook(out: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(ROOT / "notebooks" / "01_explore_annotations.ipynb", 4)
    settings = {
        "ACTION100M_OUTPUT_DIR": str(out),
        "ACTION100M_ENV": "demo",
        # The notebook's Kedro session opens kedro-mlflow: a store of its own,
        # not the project's mlflow.db.
        "MLFLOW_TRACKING_URI": f"sqlite:///{out.parent / 'notebook_mlflow.db'}",
    }
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        NotebookClient(
            notebook,
            timeout=600,
            kernel_name="python3",
            resources={"metadata": {"path": str(ROOT)}},
        ).execute()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    texts = [
        o.get("text", "")
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.outputs
    ]
    assert any("this file     paper" in t for t in texts)
    assert any("largest cluster:" in t for t in texts)
    images = [
        o
        for c in notebook.cells
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    assert len(images) >= 2  # the timeline and the cluster sizes


@pytest.mark.slow
def test_stages_rerun_alone_and_bad_params_fail_before_work(
    tmp_path, videos, model_params
):
    folder, _ = videos
    out = tmp_path / "out"
    params = f"videos_dir={folder},output_dir={out},{model_params}"
    ingest = kedro_run(
        tmp_path, "--env", "demo", "--pipeline", "ingest", "--params", params
    )
    assert ingest.returncode == 0, ingest.stderr[-3000:]
    assert not (out / "intermediate" / "segment_trees").exists()
    seg = kedro_run(
        tmp_path, "--env", "demo", "--pipeline", "segmentation", "--params", params
    )
    assert seg.returncode == 0, seg.stderr[-3000:]
    assert len(list((out / "intermediate" / "segment_trees").glob("*.json"))) == 3

    bad = kedro_run(
        tmp_path, "--env", "demo", "--params", params + ",segmentation.frame_stride=0"
    )
    assert bad.returncode != 0
    assert "frame_stride" in bad.stdout + bad.stderr

    # A model that cannot load fails the run, and its MLflow run says so.
    missing = tmp_path / "no_such_model"
    failed = kedro_run(
        tmp_path,
        *("--env", "demo", "--pipeline", "captioning", "--params"),
        f"{params},captioning.plm.model_id={missing}",
    )
    assert failed.returncode != 0
    assert str(missing) in failed.stdout + failed.stderr
    assert not (out / "intermediate" / "captions").exists()
    _, runs = mlflow_runs(tmp_path)
    states = {r.info.run_name: r.info.status for r in runs}
    assert states == {
        "ingest@demo": "FINISHED",
        "segmentation@demo": "FINISHED",
        "captioning@demo": "FAILED",
    }


@pytest.mark.slow
def test_reannotate_fills_exactly_the_released_gpt_nodes(tmp_path, release_sample):
    from tests.openai_server import FakeOpenAIServer, annotation_answer

    out = tmp_path / "out"
    out.mkdir()
    own = {n: b"the run's own file" for n in ("action100m.parquet", "errors.jsonl")}
    for name, data in own.items():
        (out / name).write_bytes(data)
    faults = ["500", "429ra", "sleep:2", "malformed", "truncated", "missing", "empty"]
    with FakeOpenAIServer(annotation_answer) as server:
        server.script = list(faults)
        params = ",".join(
            [
                f"release_input={release_sample}",
                f"output_dir={out}",
                f"aggregation.llm.base_url={server.base_url}",
                "aggregation.llm.model=test-model",
                "aggregation.llm.timeout_s=1",
                "aggregation.llm.backoff_s=0.01",
            ]
        )
        run = kedro_run(tmp_path, "--pipeline", "reannotate", "--params", params)
        sent = len(server.requests)
        first_user = server.requests[0]["messages"][1]["content"]
        assert run.returncode == 0, run.stderr[-3000:]
        # Every video's annotations lost: the rerun finds each answer, the retried
        # ones included, in the cache by the request as first asked.
        lost = list((out / "intermediate" / "reannotate_annotations").glob("*.json"))
        assert lost
        for path in lost:
            path.unlink()
        rerun = kedro_run(tmp_path, "--pipeline", "reannotate", "--params", params)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert len(server.requests) == sent

    before = pq.read_table(release_sample)
    after = pq.read_table(out / "reannotated.parquet")
    assert {n: (out / n).read_bytes() for n in own} == own  # never overwritten
    assert (out / "reannotate_errors.jsonl").exists()
    assert after.schema.equals(RELEASE_SCHEMA, check_metadata=False)
    assert table_violations(after) == []
    titles = {r["metadata"]["title"] for r in before.to_pylist()}
    assert any(title in first_user for title in titles)
    assert "# The whole video, from 0.00 to" in first_user
    had_gpt = gpt_nodes = 0
    for old, new in zip(before.to_pylist(), after.to_pylist(), strict=True):
        assert (
            old["video_uid"] == new["video_uid"] and old["metadata"] == new["metadata"]
        )
        for a, b in zip(old["nodes"], new["nodes"], strict=True):
            assert (a["gpt"] is None) == (b["gpt"] is None)
            had_gpt += a["gpt"] is not None
            if b["gpt"] is not None:
                gpt_nodes += 1
                assert b["gpt"]["summary"]["brief"].startswith("round 3 of ")
            assert {k: v for k, v in a.items() if k != "gpt"} == {
                k: v for k, v in b.items() if k != "gpt"
            }
    assert gpt_nodes == had_gpt == 746
    assert sent == 3 * 746 + len(faults)  # every fault retried once, nothing lost


@pytest.fixture(scope="module")
def two_videos(tmp_path_factory, cut_videos, tiny_models):
    """Two videos and an uninterrupted local demo run over them (the reference)."""
    folder, _ = cut_videos
    root = tmp_path_factory.mktemp("two_videos")
    videos = root / "videos"
    videos.mkdir()
    for uid in ("cuts_a", "cuts_c"):
        for suffix in (".mp4", ".json", ".cuts.json"):
            shutil.copy(folder / f"{uid}{suffix}", videos / f"{uid}{suffix}")
    settings = (
        f"videos_dir={videos},"
        f"captioning.plm.model_id={tiny_models['perception_lm']},"
        f"captioning.llama.model_id={tiny_models['mllama']},"
        f"aggregation.llm.model={tiny_models['gpt_oss']},aggregation.llm.rounds=2"
    )
    reference = root / "reference"
    done = kedro_run(
        root, "--env", "demo", "--params", f"{settings},output_dir={reference}"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return settings, read_release(reference)


def _kill_a_busy_ray_worker(process: subprocess.Popen, timeout_s: float) -> str:
    """SIGKILL the first Ray actor process of the run seen handling a video."""
    import time

    import psutil

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            children = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            break
        for child in children:
            try:
                title = " ".join(child.cmdline())
            except psutil.Error:
                continue
            if "_RayWorker.run" in title:
                child.kill()
                return title
        time.sleep(0.05)
    raise AssertionError("no Ray worker was seen handling a video")


@pytest.mark.slow
def test_ray_executor_survives_a_killed_worker_and_equals_local(tmp_path, two_videos):
    settings, reference = two_videos
    out = tmp_path / "ray"
    env = run_env(tmp_path)
    log = tmp_path / "run.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [
                KEDRO,
                "run",
                "--env",
                "demo",
                "--params",
                f"{settings},output_dir={out},executor.kind=ray",
            ],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        killed = _kill_a_busy_ray_worker(process, timeout_s=300)
        assert process.wait(timeout=600) == 0, log.read_text()[-3000:]
    output = log.read_text()
    assert "Started a local Ray instance" in output, killed
    assert read_release(out).equals(reference)
    errors = out / "errors.jsonl"
    assert not errors.exists() or errors.read_text().strip() == ""
    # What the models did inside the actors reaches the run's metrics.
    _, (run,) = mlflow_runs(tmp_path)
    for role in ("embedder", "plm", "llama", "llm"):
        assert run.data.metrics[f"work.{role}.calls"] > 0, role


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_equals_an_uninterrupted_run(tmp_path, two_videos):
    import signal
    import time

    settings, reference = two_videos
    out = tmp_path / "out"
    env = run_env(tmp_path)
    process = subprocess.Popen(
        [KEDRO, "run", "--env", "demo", "--params", f"{settings},output_dir={out}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    captions = out / "intermediate" / "captions"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(captions.glob("*.json")):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # in the middle of captioning
    process.wait()
    # Killed once a first video's captions were saved, before the stage ended
    # (how many videos it finished in between depends on the machine's speed).
    assert list(captions.glob("*.json"))
    assert not (captions / DONE_MARKER).exists()
    assert not list(out.glob("data/*.parquet"))

    # Kedro's own skip agrees with the per-video one: captioning is incomplete.
    again = kedro_run(
        tmp_path,
        *("--env", "demo", "--only-missing-outputs", "--params"),
        f"{settings},output_dir={out}",
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "caption_trees_node" in again.stdout + again.stderr
    assert read_release(out).equals(reference)
    leftovers = [
        p
        for p in out.rglob("*")
        if p.name.endswith(".tmp") and not p.name.startswith(".")
    ]
    assert leftovers == []


def _complete_files_are_whole(out: Path) -> None:
    """Every file under its final name reads back whole.

    A write cut short leaves at most a hidden ``.<name>.<random>.tmp``, which no
    loader reads.
    """
    import numpy as np

    files = [p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert [p for p in files if p.name.endswith(".tmp")] == []
    for path in files:
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".npz":
            with np.load(path) as data:
                assert data.files
        elif path.suffix == ".parquet":
            pq.read_table(path)


@pytest.mark.slow
def test_a_full_then_read_only_disk_stops_cleanly_and_resumes(tmp_path, two_videos):
    settings, reference = two_videos
    out = tmp_path / "out"
    out.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(out)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs as a full disk: {mounted.stderr!r}")
    params = f"{settings},output_dir={out}"
    try:
        full = kedro_run(tmp_path, "--env", "demo", "--params", params)
        assert full.returncode != 0
        assert "the disk is full. Nothing was left in its place" in full.stderr
        _complete_files_are_whole(out)
        assert not list(out.glob("data/*.parquet"))

        subprocess.run(["mount", "-o", "remount,ro", str(out)], check=True)
        read_only = kedro_run(tmp_path, "--env", "demo", "--params", params)
        assert read_only.returncode != 0
        assert "the file system is read-only" in read_only.stderr

        subprocess.run(["mount", "-o", "remount,rw,size=64m", str(out)], check=True)
        again = kedro_run(tmp_path, "--env", "demo", "--params", params)
        assert again.returncode == 0, again.stderr[-3000:]
        assert read_release(out).equals(reference)
        _complete_files_are_whole(out)
        assert not (out / "errors.jsonl").read_text().strip()
    finally:
        subprocess.run(["umount", "-l", str(out)], check=False)


@pytest.mark.slow
def test_ray_executor_joins_a_running_two_node_cluster(tmp_path, two_videos):
    """``ray start --head`` plus a second node process, then ``address=...``."""
    import secrets
    import socket
    import tempfile

    settings, reference = two_videos
    ray_bin = str(Path(sys.executable).with_name("ray"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Ray 2.60's `ray start` turns token authentication on: every process of the
    # cluster and the driver need the same token.
    env = {
        **run_env(tmp_path),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
    }
    common = ["--num-cpus=1", "--disable-usage-stats", "--node-ip-address=127.0.0.1"]
    temp_dir = tempfile.mkdtemp(prefix="ray")  # short: Ray's sockets live in it
    start = [
        [ray_bin, "start", "--head", f"--port={port}", "--include-dashboard=false",
         f"--temp-dir={temp_dir}", "--block", *common],
        [ray_bin, "start", f"--address=127.0.0.1:{port}", "--block", *common],
    ]  # fmt: skip
    # Each node runs in the foreground of its own process group, so that the test
    # stops exactly the processes it started (``ray stop`` would stop every Ray
    # process on the machine).
    nodes: list[subprocess.Popen] = []
    try:
        for command in start:
            nodes.append(
                subprocess.Popen(
                    command,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            _wait_for_ray_nodes(ray_bin, port, env, len(nodes), nodes)
        out = tmp_path / "ray"
        run = subprocess.run(
            [
                *(KEDRO, "run", "--env", "demo", "--params"),
                f"{settings},output_dir={out},executor.kind=ray,"
                f"executor.ray.address=127.0.0.1:{port}",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert "Connected to Ray cluster" in run.stdout + run.stderr
        assert read_release(out).equals(reference)
    finally:
        for node in reversed(nodes):
            _stop_process_group(node)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_ray_nodes(ray_bin, port, env, count, processes, timeout=180.0):
    """Until ``ray status`` lists ``count`` live nodes (or a node process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            assert process.poll() is None, f"ray start exited with {process.returncode}"
        status = subprocess.run(
            [ray_bin, "status", f"--address=127.0.0.1:{port}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        active = status.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0]
        if status.returncode == 0 and active.count("node_") >= count:
            return
        time.sleep(1.0)
    raise AssertionError(f"Ray did not list {count} nodes within {timeout:.0f} s")


def _stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM the group a started process leads, then SIGKILL what remains of it."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return  # nothing of the group is left
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
