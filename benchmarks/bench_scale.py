"""Scale checks of a whole ``kedro run --env demo`` on many short videos.

``overhead``: the Kedro run (catalog, atomic per-video partitions, resume
checks, hooks, MLflow, evaluation) vs a bare Python loop in a fresh process that
calls the same per-video functions on the same videos and writes the same final
files (release parquet, viewers, timelines, FiftyOne samples). Goal ≤ 1.15x.

``memory``: peak RSS of the run over 200 vs 20 videos. Goal: within 10%
(videos stream through the stages; none is held for the whole run).

``ray``: ``executor.kind=ray`` with 2 workers vs the local executor, same videos
(on a 2-core machine expect about 1).

    .venv/bin/python -m benchmarks.bench_scale overhead [--videos 50]
    .venv/bin/python -m benchmarks.bench_scale memory [--small 20 --large 200]
    .venv/bin/python -m benchmarks.bench_scale ray [--videos 20]

Every run starts cold (new output folder, LLM cache and MLflow store).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from action100m.demo.footage import CLIPS, PHOTOS, Shot, write_cut_video

ROOT = Path(__file__).resolve().parents[1]
WORK = Path(tempfile.gettempdir()) / "action100m_bench_scale"
KEDRO = str(Path(sys.executable).with_name("kedro"))


def short_videos(count: int, seconds: float = 6.0) -> Path:
    """``count`` videos of two shots each, 160x120, with sidecars (cached)."""
    folder = WORK / f"videos_{count}"
    folder.mkdir(parents=True, exist_ok=True)
    sources = list(CLIPS) + list(PHOTOS)
    for index in range(count):
        uid = f"short_{index:04d}"
        path = folder / f"{uid}.mp4"
        if path.exists():
            continue
        shots = [
            Shot(sources[index % len(sources)], seconds / 2),
            Shot(sources[(index + 3) % len(sources)], seconds / 2),
        ]
        tmp = str(path) + ".part.mp4"
        write_cut_video(tmp, shots, size=(160, 120))
        (folder / f"{uid}.json").write_text(json.dumps({"title": f"Video {index}"}))
        os.replace(tmp, path)
    return folder


def tiny_models() -> dict[str, str]:
    from action100m.demo.tiny_models import build_tiny_models

    folder = WORK / "models"
    if (folder / "gpt_oss" / "config.json").exists():
        return {p.name: str(p) for p in folder.iterdir()}
    return {k: str(v) for k, v in build_tiny_models(str(folder)).items()}


def run_params(videos: Path, out: Path, extra: str = "") -> str:
    models = tiny_models()
    params = (
        f"videos_dir={videos},output_dir={out},"
        f"captioning.plm.model_id={models['perception_lm']},"
        f"captioning.llama.model_id={models['mllama']},"
        f"aggregation.llm.model={models['gpt_oss']}"
    )
    return params + ("," + extra if extra else "")


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a child process."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output = process.stdout.read() if process.stdout else b""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.stderr.write(output.decode(errors="replace")[-4000:])
        raise SystemExit(f"failed: {' '.join(command[:4])} ...")
    return wall, usage.ru_maxrss / 1024


def kedro_run(videos: Path, label: str, extra: str = "") -> tuple[float, float, Path]:
    out = WORK / "runs" / label
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = {
        **os.environ,
        "KEDRO_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "1",
        "MLFLOW_TRACKING_URI": f"sqlite:///{out / 'mlflow.db'}",
    }
    params = run_params(videos, out, extra)
    wall, peak = timed([KEDRO, "run", "--env", "demo", "--params", params], env)
    return wall, peak, out


BARE = """
import json, os, sys
import pyarrow as pa, pyarrow.parquet as pq
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from action100m.datasets import VideoFolderDataset
from action100m.release.fiftyone_format import VideoFrames, video_sample
from action100m.pipelines.aggregation.nodes import AggregationWorker
from action100m.pipelines.captioning.nodes import CaptioningWorker
from action100m.pipelines.ingest.nodes import probe_videos
from action100m.pipelines.segmentation.nodes import EmbeddingWorker, build_tree
from action100m.release.quality import release_metrics
from action100m.core.schema import RELEASE_SCHEMA
from action100m.core.tree import SegmentTree
from action100m.media.video import manifest_sources
from action100m.release.viewer import render_html, render_timeline_png

root, videos_dir, out, extra = sys.argv[1:5]
bootstrap_project(root)
runtime = dict(item.split("=", 1) for item in extra.split(","))
with KedroSession.create(project_path=root, env="demo", runtime_params=runtime) as s:
    params = s.load_context().params
seg, cap, agg = params["segmentation"], params["captioning"], params["aggregation"]
agg.llm.cache_dir = os.path.join(out, "llm_cache")
listing = VideoFolderDataset(path=videos_dir).load()
manifest, errors = probe_videos(listing, params["ingest"])
sources = manifest_sources(manifest, listing)
embed, caption, annotate = EmbeddingWorker(seg), CaptioningWorker(cap), \\
    AggregationWorker(agg)
# Stage by stage, as the Kedro run orders the work, holding results in memory.
trees = {
    v["video_uid"]: build_tree(v, embed((v, sources[v["video_uid"]])), seg)
    for v in manifest
}
captions = {
    v["video_uid"]: caption((trees[v["video_uid"]], v, sources[v["video_uid"]]))
    for v in manifest
}
annotated = {}
for video in manifest:
    tree = SegmentTree.from_dict(trees[video["video_uid"]])
    tree.update_nodes(captions[video["video_uid"]]["captions"])
    gpt = annotate(tree)["annotations"]
    tree.update_nodes({node_id: {"gpt": g} for node_id, g in gpt.items()})
    annotated[video["video_uid"]] = tree
rows, samples = [], []
os.makedirs(os.path.join(out, "views"), exist_ok=True)
for video in manifest:
    uid = video["video_uid"]
    tree = annotated[uid]
    rows.append(tree.to_release_row())
    with open(os.path.join(out, "views", uid + ".html"), "w") as handle:
        handle.write(render_html(tree, video["path"]))
    with open(os.path.join(out, "views", uid + ".png"), "wb") as handle:
        handle.write(render_timeline_png(tree))
    samples.append(video_sample(tree, VideoFrames.from_probe(video["path"], video)))
table = pa.Table.from_pylist(rows, schema=RELEASE_SCHEMA)
pq.write_table(table, os.path.join(out, "action100m.parquet"))
with open(os.path.join(out, "samples.json"), "w") as handle:
    json.dump({"samples": samples}, handle)
with open(os.path.join(out, "errors.jsonl"), "w") as handle:
    handle.writelines(json.dumps(e) + "\\n" for e in errors)
with open(os.path.join(out, "metrics.json"), "w") as handle:
    json.dump(release_metrics(table), handle)
"""


def bare_loop(videos: Path, label: str) -> tuple[float, float, Path]:
    out = WORK / "runs" / label
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    extra = run_params(videos, out)
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-c", BARE, str(ROOT), str(videos), str(out), extra]
    wall, peak = timed(command, env)
    return wall, peak, out


def same_release(a: Path, b: Path) -> bool:
    """The same rows in a run's shards (``data/``) or a bare loop's one file."""
    from action100m.release.shards import read_release

    return read_release(a).equals(read_release(b))


def overhead(args: argparse.Namespace) -> None:
    videos = short_videos(args.videos)
    tiny_models()
    bare_s, bare_mb, bare_out = bare_loop(videos, "bare")
    kedro_s, kedro_mb, kedro_out = kedro_run(videos, "kedro")
    print(f"{args.videos} videos of 6 s, tiny models on CPU")
    print(f"bare loop : {bare_s:7.1f} s  peak {bare_mb:6.0f} MB")
    print(f"kedro run : {kedro_s:7.1f} s  peak {kedro_mb:6.0f} MB")
    print(f"ratio     : {kedro_s / bare_s:.3f}x (goal <= 1.15)")
    print(f"same release parquet: {same_release(bare_out, kedro_out)}")


def memory(args: argparse.Namespace) -> None:
    small = short_videos(args.small)
    large = short_videos(args.large)
    tiny_models()
    small_s, small_mb, _ = kedro_run(small, f"memory_{args.small}")
    large_s, large_mb, _ = kedro_run(large, f"memory_{args.large}")
    print(f"{args.small:4d} videos: {small_s:7.1f} s  peak RSS {small_mb:6.0f} MB")
    print(f"{args.large:4d} videos: {large_s:7.1f} s  peak RSS {large_mb:6.0f} MB")
    print(f"peak ratio: {large_mb / small_mb:.3f} (goal <= 1.10)")


def ray(args: argparse.Namespace) -> None:
    videos = short_videos(args.videos)
    tiny_models()
    local_s, _, local_out = kedro_run(videos, "local")
    ray_s, _, ray_out = kedro_run(
        videos, "ray", "executor.kind=ray,executor.ray.workers=2"
    )
    print(f"local executor : {local_s:7.1f} s")
    print(f"ray, 2 workers : {ray_s:7.1f} s")
    print(f"ratio ray/local: {ray_s / local_s:.3f}")
    print(f"same release parquet: {same_release(local_out, ray_out)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="check", required=True)
    one = sub.add_parser("overhead")
    one.add_argument("--videos", type=int, default=50)
    one.set_defaults(func=overhead)
    two = sub.add_parser("memory")
    two.add_argument("--small", type=int, default=20)
    two.add_argument("--large", type=int, default=200)
    two.set_defaults(func=memory)
    three = sub.add_parser("ray")
    three.add_argument("--videos", type=int, default=20)
    three.set_defaults(func=ray)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
