"""Videos in a private bucket: a real S3 API (moto's server) on 127.0.0.1.

The run's own conf folder holds the bucket's key, secret and endpoint in
``local/credentials.yml``; nothing else in the environment points at the bucket,
so every read (listing, probing, decoding, sidecars) works only if those options
reach it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.openai_server import FakeOpenAIServer
from tests.test_run import ROOT, kedro_run, mlflow_runs, run_env

KEY, SECRET, BUCKET = "AKIATESTKEY", "test-secret", "private-videos"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        server.kill()
        pytest.fail("moto server did not start")
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=30)


def _storage_options(endpoint: str) -> dict:
    return {"key": KEY, "secret": SECRET, "client_kwargs": {"endpoint_url": endpoint}}


def _conf_with_credentials(tmp_path: Path, endpoint: str) -> Path:
    """The project's base conf; the user's ``local`` = the demo's settings + keys."""
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf" / "base", conf / "base")
    shutil.copytree(ROOT / "conf" / "demo", conf / "local")
    credentials = {"videos": _storage_options(endpoint)}
    (conf / "local" / "credentials.yml").write_text(yaml.safe_dump(credentials))
    return conf


def _run(
    tmp_path: Path,
    conf: Path,
    videos_dir: str,
    out: Path,
    server: str | None = None,
    extra: str = "",
):
    """ingest, segmentation and, with a caption server, captioning."""
    served = ",".join(
        f"captioning.{role}.backend=openai,captioning.{role}.base_url={server},"
        f"captioning.{role}.max_attempts=3"
        for role in ("plm", "llama")
        if server
    )
    pipelines = "ingest,segmentation" + (",captioning" if server else "")
    env = {
        k: v for k, v in run_env(tmp_path).items() if not k.startswith(("AWS_", "BOTO"))
    }
    # No way to the bucket but the conf's credentials.
    env |= {
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return kedro_run(
        tmp_path,
        "--conf-source",
        str(conf),
        "--pipelines",
        pipelines,
        "--params",
        ",".join(
            p for p in (f"videos_dir={videos_dir},output_dir={out}", served, extra) if p
        ),
        env=env,
    )


def _tree_files(out: Path) -> dict[str, dict]:
    folder = out / "intermediate" / "segment_trees"
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


@pytest.fixture(scope="module")
def bucket(s3_endpoint, cut_videos) -> str:
    """The generated videos and their sidecars in a private bucket."""
    import s3fs

    folder, _ = cut_videos
    fs = s3fs.S3FileSystem(**_storage_options(s3_endpoint))
    fs.mkdir(BUCKET)
    fs.put(f"{folder}/", f"{BUCKET}/in/", recursive=True)
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{BUCKET}/in")) == sorted(
        p.name for p in folder.iterdir()
    )
    return f"s3://{BUCKET}/in"


@pytest.mark.slow
def test_run_reads_videos_and_sidecars_from_a_private_bucket(
    tmp_path, cut_videos, s3_endpoint, bucket
):
    folder, cuts = cut_videos
    conf = _conf_with_credentials(tmp_path, s3_endpoint)

    with FakeOpenAIServer() as server:
        from_bucket = _run(tmp_path, conf, bucket, tmp_path / "s3", server.base_url)
        assert from_bucket.returncode == 0, from_bucket.stderr[-3000:]
        served_from_bucket = len(server.requests)
        from_disk = _run(
            tmp_path, conf, str(folder), tmp_path / "disk", server.base_url
        )
        assert from_disk.returncode == 0, from_disk.stderr[-3000:]
    logged = from_bucket.stdout + from_bucket.stderr
    assert SECRET not in logged
    # Progress without a terminal: log lines with totals and an ETA.
    for stage in ("embedding", "segmentation", "captioning"):
        assert f"{stage}: 3/3 videos" in logged
    assert "ETA 00:00:00" in logged

    manifest = [
        json.loads(line)
        for line in (tmp_path / "s3/intermediate/video_manifest.jsonl")
        .read_text()
        .splitlines()
    ]
    assert sorted(row["video_uid"] for row in manifest) == sorted(cuts)
    assert all(row["path"].startswith(f"s3://{BUCKET}/in/") for row in manifest)
    # Sidecars came from the bucket too.
    assert {row["metadata"]["title"] for row in manifest} == {
        f"Video {uid}" for uid in cuts
    }
    assert not (tmp_path / "s3/intermediate/ingest_errors.jsonl").read_text().strip()

    # The same trees as from local files, and every node captioned from frames
    # decoded out of the bucket.
    trees = _tree_files(tmp_path / "s3")
    assert sorted(trees) == sorted(cuts)
    assert trees == _tree_files(tmp_path / "disk")
    captions = tmp_path / "s3" / "intermediate" / "captions"
    for uid, tree in trees.items():
        part = json.loads((captions / f"{uid}.json").read_text())
        assert part["errors"] == []
        assert set(part["captions"]) == {n["node_id"] for n in tree["nodes"]}
    assert served_from_bucket == len(server.requests) - served_from_bucket > 0

    # The MLflow runs got the same figures, with step = videos done (every 10 s
    # at most, and at the end).
    client, runs = mlflow_runs(tmp_path)
    for run in runs:
        history = client.get_metric_history(
            run.info.run_id, "progress.captioning.videos_done"
        )
        assert max(m.step for m in history) == 3
        assert all(m.value == m.step for m in history)


@pytest.mark.slow
def test_ray_workers_decode_from_the_bucket(tmp_path, cut_videos, s3_endpoint, bucket):
    folder, cuts = cut_videos
    conf = _conf_with_credentials(tmp_path, s3_endpoint)
    ray = _run(
        tmp_path,
        conf,
        bucket,
        tmp_path / "ray",
        extra="executor.kind=ray,executor.ray.workers=1",
    )
    assert ray.returncode == 0, ray.stderr[-3000:]
    assert "Started a local Ray instance" in ray.stdout + ray.stderr
    disk = _run(tmp_path, conf, str(folder), tmp_path / "disk")
    assert disk.returncode == 0, disk.stderr[-3000:]
    trees = _tree_files(tmp_path / "ray")
    assert sorted(trees) == sorted(cuts)
    assert trees == _tree_files(tmp_path / "disk")
