"""Driver-side cost of a run as the number of videos grows, up to 10^6.

No model runs: the per-video intermediates a run writes (the manifest, segment
trees, captions and Self-Refine annotations, each with its record of what made
it) are fabricated with the release sample's statistics (nodes and leaves per
minute, video length, words per caption and ``gpt`` field; built-in constants
when the sample is absent) through the project's own writers
(:class:`VideoPartitionsDataset`, :class:`SegmentTree`). One video of each
stage is written for real; the other videos' files are hard links to it (the
same bytes under another name), so 10^5 videos cost inodes, not 10^5 times the
disk. Every driver-side step then runs in a fresh process (``spawn``), which
reports its wall time, its peak RSS (``ru_maxrss``) and what it touched
(files opened, folders listed, counted by an audit hook):

- ``manifest``: list the videos folder, write and read the manifest;
- ``listing``: list a stage's partitions (``VideoPartitionsDataset.load``);
- ``decisions``: which videos a rerun submits (fingerprints of 99 % of the
  outputs match, 1 % are missing) and the saving of the 1 % new ones;
- ``run_index``: the index's summary and every listing page, saved;
- ``mlflow``: storage per video-hour of every folder, logged with the run's
  metrics and timeline artifacts to a SQLite store;
- at ``--heavy-n`` (each reads and writes every video's full content):
  ``intake`` (videos/s the driver takes in from a worker: results through
  ``map_videos`` into a partition save), ``export`` (full), ``export_again``
  (after adding 1 % new videos), ``stats``, ``resampling`` (a hashing encoder in
  place of the sentence model) and ``card``.

For each step it prints the growth exponent of time and RSS (a least-squares fit
of log time on log N) and, where 10^6 was not run, the time extrapolated to it.
Goals: exponent <= 1.1; peak RSS at the largest N within 1.5x of the smallest;
``export_again`` <= 5 % of ``export``.

    .venv/bin/python -m benchmarks.bench_million --n 1000 10000 100000 \\
        --heavy-n 100 300 1000 --out million.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The release sample, beside the checkout (or beside its parent folder).
SAMPLES = [ROOT.parent / "shared" / "data", ROOT.parents[1] / "shared" / "data"]
SAMPLE_PARQUET = "action100m_release_sample/sample.parquet"
# The release sample's statistics (used when the sample is absent).
DEFAULTS = {
    "nodes_per_min": 84.3,
    "leaves_per_min": 42.3,
    "minutes": 6.4,
    "words": {
        "plm_caption": 80.0,
        "plm_action": 6.4,
        "llama3_caption": 164.0,
        "summary_brief": 19.6,
        "summary_detailed": 101.3,
        "action_brief": 3.4,
        "action_detailed": 28.0,
        "action_actor": 5.0,
    },
}
WORDS = (
    "person hand table knife onion board pan stir cut pour water bowl slowly then "
    "picks places turns camera kitchen wooden bright light left right opens closes "
    "paper glue tape brush writes page notebook cup coffee ticket photo"
).split()
STAGES = ("segment_trees", "captions", "annotations")
GOAL_EXPONENT, GOAL_RSS_RATIO, GOAL_INCREMENTAL = 1.1, 1.5, 0.05
CAPTIONS_IDENTITY = {"stage": "captions", "settings": {"fabricated": True}}


# ------------------------------------------------------------------ statistics
def sample_statistics(folder: Path | None = None) -> dict[str, Any]:
    """Nodes and leaves per minute, mean length and words per field of the sample."""
    found = [f / SAMPLE_PARQUET for f in ([folder] if folder else SAMPLES)]
    path = next((p for p in found if p.is_file()), None)
    if path is None:
        return dict(DEFAULTS, source="built-in constants")
    import pyarrow.parquet as pq

    from action100m.release.stats import compute_stats

    table = pq.read_table(path)
    stats = compute_stats(table)
    minutes = sum(max(n["end"] for n in r) for r in table.column("nodes").to_pylist())
    minutes /= 60
    words = dict(DEFAULTS["words"])
    words.update({k: v for k, v in stats["mean_words"].items() if v})
    return {
        "nodes_per_min": stats["nodes"] / minutes,
        "leaves_per_min": stats["leaves"] / minutes,
        "minutes": DEFAULTS["minutes"],  # the release's mean length, not the sample's
        "words": words,
        "source": str(path),
    }


# ----------------------------------------------------------------- fabrication
def _text(rng: random.Random, mean_words: float) -> str:
    count = max(1, round(rng.gauss(mean_words, mean_words / 4)))
    return " ".join(rng.choice(WORDS) for _ in range(count))


def template_tree(uid: str, stats: dict[str, Any], seed: int = 0):
    """A segment tree with the sample's density: binary splits down to its leaves."""
    from action100m.core.tree import Node, SegmentTree, make_node_id

    rng = random.Random(seed)
    duration = stats["minutes"] * 60
    leaves = max(1, round(stats["leaves_per_min"] * stats["minutes"]))
    spans = [(0.0, duration)]
    while len(spans) < leaves:  # split the longest span at a random point
        spans.sort(key=lambda s: s[1] - s[0])
        start, end = spans.pop()
        cut = round(start + (end - start) * rng.uniform(0.3, 0.7), 2)
        spans += [(start, cut), (cut, end)]
    spans.sort()
    # Merge neighbours bottom-up into a binary tree; levels from the top.
    layer = [(s, e, None) for s, e in spans]
    children: dict[tuple, list[tuple]] = {}
    while len(layer) > 1:
        merged = []
        for i in range(0, len(layer) - 1, 2):
            parent = (layer[i][0], layer[i + 1][1], None)
            children[parent[:2]] = [layer[i][:2], layer[i + 1][:2]]
            merged.append(parent)
        if len(layer) % 2:
            merged.append(layer[-1])
        layer = merged
    nodes, queue = [], [((0.0, duration), None, 0)]
    while queue:
        (start, end), parent, level = queue.pop(0)
        node_id = make_node_id(uid, start, end)
        nodes.append(Node(node_id, parent, level, start, end))
        queue += [(kid, node_id, level + 1) for kid in children.get((start, end), [])]
    tree = SegmentTree(uid, nodes, metadata={"title": f"video {uid}", "duration": 384})
    frames = int(duration * 30 / 4)
    tree.frame_times = [round(i * 4 / 30, 3) for i in range(frames)]
    tree.linkage = [[i, i + 1, rng.random(), 2] for i in range(frames - 1)]
    return tree


def template_outputs(uid: str, stats: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One video's partition of each stage, shaped as the pipeline writes them."""
    from action100m.core.tree import GPT_MIN_S

    rng = random.Random(1)
    words = stats["words"]
    tree = template_tree(uid, stats)
    kids = tree.children()
    captions, annotations, rounds = {}, {}, {}
    for node in tree.nodes:
        leaf = node.node_id not in kids
        captions[node.node_id] = {
            "plm_caption": _text(rng, words["plm_caption"]),
            "plm_action": _text(rng, words["plm_action"]),
            "llama3_caption": _text(rng, words["llama3_caption"]) if leaf else None,
        }
        if leaf or node.duration < GPT_MIN_S:
            continue
        gpt = {
            "summary": {
                "brief": _text(rng, words["summary_brief"]),
                "detailed": _text(rng, words["summary_detailed"]),
            },
            "action": {
                "brief": _text(rng, words["action_brief"]),
                "detailed": _text(rng, words["action_detailed"]),
                "actor": _text(rng, words["action_actor"]),
            },
        }
        annotations[node.node_id] = gpt
        rounds[node.node_id] = [
            {
                "round": r,
                "annotation": gpt,
                "attempts": 1,
                "cached": False,
                "usage": {"prompt_tokens": 24000, "completion_tokens": 600},
                "request": {"temperature": 0.0, "max_tokens": 4096},
            }
            for r in (1, 2, 3)
        ]
    return {
        "segment_trees": tree.to_dict(),
        "captions": {"video_uid": uid, "captions": captions, "errors": []},
        "annotations": {
            "video_uid": uid,
            "annotations": annotations,
            "rounds": rounds,
            "landed_round": dict.fromkeys(annotations, 3),
            "prompt_context": {n: {"prompt_chars": 98700} for n in annotations},
            "errors": [],
        },
    }


def captions_record(tree_fingerprint: str | None) -> dict[str, Any]:
    """The record the ``decisions`` step expects of a video's captions."""
    from action100m.runtime.fingerprint import made_by

    return made_by(CAPTIONS_IDENTITY, {"segment_trees": tree_fingerprint})


def _uid(index: int) -> str:
    return f"v{index:07d}"


def _manifest_row(uid: str, stats: dict[str, Any], root: Path) -> dict[str, Any]:
    duration = stats["minutes"] * 60
    return {
        "video_uid": uid,
        "path": str(root / "videos" / f"{uid}.mp4"),
        "duration": duration,
        "fps": 30.0,
        "width": 1280,
        "height": 720,
        "frames": int(duration * 30),
        "codec": "h264",
        "metadata": {"title": f"video {uid}", "duration": round(duration)},
    }


MAX_LINKS = 60_000  # below ext4's 65,000 links per file


_LINK_BASE: dict[Path, Path] = {}  # file -> the copy of it that takes new links


def link(source: Path, target: Path) -> None:
    """``target`` as a hard link to ``source`` (or to a copy, past ``MAX_LINKS``)."""
    base = _LINK_BASE.get(source, source)
    if base.stat().st_nlink >= MAX_LINKS:
        shutil.copyfile(source, target)
        _LINK_BASE[source] = target
        return
    os.link(base, target)


def fabricate(root: Path, n: int, stats: dict[str, Any], missing: float = 0.01):
    """``n`` videos' intermediates under ``root``; ``missing`` of them lack captions.

    Returns:
        The manifest rows, and the uids whose captions are missing.
    """
    from action100m.datasets import JSONLinesDataset, VideoPartitionsDataset
    from action100m.runtime.fingerprint import digest, made_by

    outputs = template_outputs(_uid(0), stats)
    template_uid = _uid(0)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    video = root / "videos" / f"{template_uid}.mp4"
    video.write_bytes(b"\0" * 1024)
    records = {
        "segment_trees": made_by({"stage": "segment_trees"}, {"video": digest(1)}),
    }
    records["captions"] = captions_record(records["segment_trees"]["fingerprint"])
    records["annotations"] = made_by({"stage": "annotations"}, {"x": 1})
    for stage in STAGES:
        dataset = VideoPartitionsDataset(path=str(root / "intermediate" / stage))
        dataset._store(template_uid, outputs[stage], records[stage])
    rows = [_manifest_row(_uid(i), stats, root) for i in range(n)]
    rng = random.Random(2)
    lacking = {r["video_uid"] for r in rows[1:] if rng.random() < missing}
    for stage in STAGES:
        folder = root / "intermediate" / stage
        part = folder / f"{template_uid}.json"
        record = folder / "_made_by" / f"{template_uid}.json"
        for row in rows[1:]:
            uid = row["video_uid"]
            if stage == "captions" and uid in lacking:
                continue
            link(part, folder / f"{uid}.json")
            link(record, folder / "_made_by" / f"{uid}.json")
    for row in rows[1:]:
        link(video, root / "videos" / f"{row['video_uid']}.mp4")
    JSONLinesDataset(filepath=str(root / "intermediate" / "video_manifest.jsonl")).save(
        rows
    )
    return rows, sorted(lacking)


# ------------------------------------------------------------------- the steps
class _Touches:
    """Counts files opened and folders listed in this process (an audit hook)."""

    opened = listed = 0

    @classmethod
    def hook(cls, event: str, args: tuple) -> None:
        if event == "open":
            cls.opened += 1
        elif event in ("os.listdir", "os.scandir"):
            cls.listed += 1


def _manifest(root: Path) -> list[dict[str, Any]]:
    from action100m.datasets import JSONLinesDataset

    return JSONLinesDataset(
        filepath=str(root / "intermediate" / "video_manifest.jsonl")
    ).load()


def _partitions(root: Path, name: str, **kwargs: Any):
    from action100m.datasets import VideoPartitionsDataset

    return VideoPartitionsDataset(path=str(root / "intermediate" / name), **kwargs)


def step_manifest(root: Path) -> dict[str, Any]:
    from action100m.datasets import JSONLinesDataset, VideoFolderDataset

    listed = VideoFolderDataset(path=str(root / "videos")).load()
    JSONLinesDataset(filepath=str(root / "manifest_copy.jsonl")).save(_manifest(root))
    rows = JSONLinesDataset(filepath=str(root / "manifest_copy.jsonl")).load()
    return {"videos": len(listed), "rows": len(rows)}


def step_listing(root: Path) -> dict[str, Any]:
    return {"partitions": len(_partitions(root, "segment_trees").load())}


class _IntakeWorker:
    """Hands back a fabricated Stage 2 result, as a worker's result arrives."""

    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result

    def __call__(self, uid: str) -> dict[str, Any]:
        return {**self.result, "video_uid": uid}


def _captions_work(
    root: Path,
    rows: list[dict[str, Any]],
    trees,
    executor: Any = None,
    worker: type = _IntakeWorker,
):
    from functools import partial

    from action100m.core.params import ExecutorParams
    from action100m.runtime.executor import map_videos

    result = json.loads(
        (root / "intermediate" / "captions" / f"{_uid(0)}.json").read_text()
    )
    return map_videos(
        "captioning",
        {r["video_uid"]: partial(str, r["video_uid"]) for r in rows},
        partial(worker, result),
        executor or ExecutorParams(),
        made_by=lambda uid: captions_record(trees.fingerprint(uid)),
    )


def step_decisions(root: Path) -> dict[str, Any]:
    """A rerun of Stage 2: which videos to submit, and saving the new ones."""
    rows = _manifest(root)
    trees = _partitions(root, "segment_trees").load()
    dataset = _partitions(root, "captions")
    work = _captions_work(root, rows, trees)
    dataset.save(work)
    return {**dataset.counts, "submitted": len(work.submitted)}


def _intake(root: Path, executor: Any = None, worker: type = _IntakeWorker) -> dict:
    """Every video's Stage 2 result through ``map_videos`` into a fresh folder.

    The rate counts from the first video stored to the last, so it leaves out
    starting the workers.
    """
    from action100m.datasets import VideoPartitionsDataset

    stamps: list[float] = []

    class Timed(VideoPartitionsDataset):
        def _store(self, *args: Any) -> bool:
            done = super()._store(*args)
            stamps.append(time.perf_counter())
            return done

    rows = _manifest(root)
    trees = _partitions(root, "segment_trees").load()
    folder = root / "intermediate" / "captions_intake"
    dataset = Timed(path=str(folder))
    dataset.save(_captions_work(root, rows, trees, executor, worker))
    shutil.rmtree(folder)
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    return {"written": dataset.counts["written"], "videos_per_s": rate}


def step_intake(root: Path) -> dict[str, Any]:
    return _intake(root)


def step_intake_ray(root: Path) -> dict[str, Any]:
    """:func:`step_intake` from two Ray actors on this machine."""
    from action100m.core.params import ExecutorParams, RayParams

    # The actors unpickle the worker by its module's name: make it importable.
    paths = [str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    from benchmarks.bench_million import _IntakeWorker as worker

    ray = RayParams(workers=2, num_cpus=0.5, max_in_flight=8)
    return _intake(root, ExecutorParams(kind="ray", ray=ray), worker)


def run_export(root: Path, out: Path) -> dict[str, Any]:
    """The export as the pipeline runs it.

    Release JSON per video (kept where its inputs did not change), the release
    shards (rewritten only where their videos changed) and the errors table,
    through the export pipeline's node functions and the catalog's dataset
    classes.
    """
    from action100m.core.params import ExportParams
    from action100m.datasets import (
        JSONLinesDataset,
        ReleaseShardsDataset,
        VideoPartitionsDataset,
    )
    from action100m.pipelines.export.nodes import (
        collect_errors,
        export_video_trees,
        release_shards,
    )

    rows = _manifest(root)
    trees = _partitions(root, "segment_trees").load()
    captions = _partitions(root, "captions").load()
    annotations = _partitions(root, "annotations").load()
    release = VideoPartitionsDataset(path=str(out / "trees"), format="json")
    release.save(export_video_trees(trees, captions, annotations, rows))
    written = release.load()
    ReleaseShardsDataset(path=str(out / "data")).save(
        release_shards(written, rows, ExportParams())
    )
    errors = collect_errors(written, captions, annotations, rows, [])
    JSONLinesDataset(filepath=str(out / "errors.jsonl")).save(errors)
    return {"videos": len(written), "errors": len(errors)}


def step_export(root: Path) -> dict[str, Any]:
    return run_export(root, root / "release")


def add_new_videos(root: Path, share: float = 0.01) -> int:
    """Add ``share`` more videos (links to the template) to the manifest."""
    from action100m.datasets import JSONLinesDataset

    rows = _manifest(root)
    stats = sample_statistics()
    new = [
        _manifest_row(_uid(len(rows) + i), stats, root)
        for i in range(max(1, round(len(rows) * share)))
    ]
    for stage in STAGES:
        folder = root / "intermediate" / stage
        for row in new:
            uid = row["video_uid"]
            link(folder / f"{_uid(0)}.json", folder / f"{uid}.json")
            link(
                folder / "_made_by" / f"{_uid(0)}.json",
                folder / "_made_by" / f"{uid}.json",
            )
    JSONLinesDataset(filepath=str(root / "intermediate" / "video_manifest.jsonl")).save(
        rows + new
    )
    return len(new)


def step_export_again(root: Path) -> dict[str, Any]:
    return run_export(root, root / "release")


def _release_table(root: Path):
    """The exported release shards, read a row group at a time."""
    from action100m.datasets import ReleaseShardsDataset

    return ReleaseShardsDataset(path=str(root / "release" / "data")).load()


def step_stats(root: Path) -> dict[str, Any]:
    from action100m.release.stats import compute_stats

    return {"nodes": compute_stats(_release_table(root))["nodes"]}


class HashEncoder:
    """A stand-in sentence encoder: 384 numbers from each text's hash."""

    def encode(self, texts: list[str], **_: Any):
        import numpy as np

        out = np.empty((len(texts), 384), dtype=np.float32)
        for i, text in enumerate(texts):
            rng = np.random.default_rng(abs(hash(text)) % 2**32)
            out[i] = rng.standard_normal(384)
        return out


def step_resampling(root: Path) -> dict[str, Any]:
    from action100m.core.params import ResamplingParams
    from action100m.pipelines.resampling import nodes

    nodes.load_sentence_encoder = lambda *_: HashEncoder()
    selection, sizes, _ = nodes.resample_actions(
        _release_table(root), ResamplingParams()
    )
    return {"selected": len(selection), "k": sizes["k"]}


def step_card(root: Path) -> dict[str, Any]:
    import yaml

    from action100m.core import params as p
    from action100m.pipelines.export.nodes import write_dataset_card

    conf = ROOT / "conf" / "base"
    captioning = yaml.safe_load((conf / "parameters_captioning.yml").read_text())
    cards = write_dataset_card(
        _release_table(root),
        p.SegmentationParams(),
        p.CaptioningParams(**(captioning["captioning"] or {})),
        p.AggregationParams(),
        p.ExportParams(),
    )
    return {"card_chars": sum(len(card) for card in cards)}


def step_run_index(root: Path) -> dict[str, Any]:
    from action100m.datasets import VideoPartitionsDataset
    from action100m.release.run_index import PAGES_FOLDER, RunIndex

    rows = _manifest(root)
    errors = [
        {
            "video_uid": r["video_uid"],
            "stage": "captioning",
            "node_id": "n",
            "field": "x",
        }
        for r in rows[::1000]
    ]
    index = RunIndex(errors, {"videos": len(rows)})
    for row in rows:
        index.add(
            {
                "video_uid": row["video_uid"],
                "title": row["metadata"]["title"],
                "duration": row["duration"],
                "nodes": 540,
                "annotated": 200,
            }
        )
    summary = index.summary_page()
    pages = VideoPartitionsDataset(
        path=str(root / PAGES_FOLDER),
        format="bytes",
        suffix=".html",
        skip_existing=False,
    )
    listing = index.listing_pages()
    pages.save(listing)
    largest = max(
        os.path.getsize(root / PAGES_FOLDER / f"{name}.html") for name in listing
    )
    return {"pages": len(listing), "summary_bytes": len(summary), "page_bytes": largest}


def step_mlflow(root: Path) -> dict[str, Any]:
    import mlflow

    from action100m.runtime.tracking import storage_metrics

    # The run's hours come from its summary; the manifest is not read again.
    videos = sum(1 for _ in os.scandir(root / "videos"))
    video_hours = videos * sample_statistics()["minutes"] / 60
    folders = {
        f"intermediate_{stage}": str(root / "intermediate" / stage) for stage in STAGES
    }
    store = Path(tempfile.mkdtemp(prefix="mlflow-", dir=root))
    mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
    mlflow.set_experiment("bench_million")
    metrics = storage_metrics(folders, video_hours)
    timelines = root / "videos"  # stands in for timelines/: one file per video
    with mlflow.start_run():
        mlflow.log_params({f"param_{i}": i for i in range(300)})
        mlflow.log_metrics({**metrics, **{f"metric_{i}": i for i in range(100)}})
        files = sorted(f for f in os.listdir(timelines) if not f.startswith("."))
        for name in files[:200]:
            mlflow.log_artifact(str(timelines / name), "timelines")
    shutil.rmtree(store)
    return {k.removeprefix("storage."): round(v) for k, v in metrics.items()}


STEPS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "manifest": step_manifest,
    "listing": step_listing,
    "decisions": step_decisions,
    "run_index": step_run_index,
    "mlflow": step_mlflow,
}
HEAVY_STEPS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "intake": step_intake,
    "export": step_export,
    "export_again": step_export_again,
    "stats": step_stats,
    "resampling": step_resampling,
    "card": step_card,
}


# Imported before a step's clock starts: what every run pays once, whatever N.
PRELOAD = (
    "action100m.datasets",
    "action100m.pipelines.export.nodes",
    "action100m.release.run_index",
    "action100m.runtime.executor",
    "action100m.runtime.tracking",
)
STEP_PRELOAD = {
    "intake_ray": ("ray",),
    "mlflow": ("mlflow",),
    "resampling": ("action100m.pipelines.resampling.nodes", "sklearn.cluster"),
    "stats": ("action100m.release.stats",),
    "card": ("yaml", "action100m.release.dataset_card"),
}


# Run only when named with --steps.
OPTIONAL_STEPS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "intake_ray": step_intake_ray,
}


def _run_step(name: str, root: str) -> dict[str, Any]:
    """One step in this (fresh) process: time, peak RSS, files touched."""
    import importlib

    for module in PRELOAD + STEP_PRELOAD.get(name, ()):
        importlib.import_module(module)
    sys.addaudithook(_Touches.hook)
    step = {**STEPS, **HEAVY_STEPS, **OPTIONAL_STEPS}[name]
    before = (_Touches.opened, _Touches.listed)
    start = time.perf_counter()
    result = step(Path(root))
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "files_opened": _Touches.opened - before[0],
        "folders_listed": _Touches.listed - before[1],
        **result,
    }


def measure(name: str, root: Path) -> dict[str, Any]:
    """``name`` in a fresh process (spawn), so its peak RSS is its own."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_run_step, name, str(root)).result()


# ---------------------------------------------------------------------- report
def exponent(ns: list[int], values: list[float]) -> float | None:
    """Least-squares slope of log value on log N (None with fewer than 2 points)."""
    pairs = [(math.log(n), math.log(v)) for n, v in zip(ns, values) if v > 0]
    if len(pairs) < 2:
        return None
    mx = sum(x for x, _ in pairs) / len(pairs)
    my = sum(y for _, y in pairs) / len(pairs)
    sxx = sum((x - mx) ** 2 for x, _ in pairs)
    return sum((x - mx) * (y - my) for x, y in pairs) / sxx if sxx else None


def summarise(runs: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """Per step: growth exponents, RSS ratio, time at 10^6 (measured or not)."""
    summary = {}
    for name, by_n in runs.items():
        ns = sorted(by_n)
        times = [by_n[n]["seconds"] for n in ns]
        rss = [by_n[n]["peak_rss_mb"] for n in ns]
        opened = [by_n[n]["files_opened"] for n in ns]
        growth = exponent(ns, times)
        entry: dict[str, Any] = {
            "n": ns,
            "time_exponent": growth,
            "files_opened_exponent": exponent(ns, opened),
            "rss_ratio": rss[-1] / rss[0],
        }
        if 10**6 in by_n:
            entry["seconds_at_1e6"] = by_n[10**6]["seconds"]
            entry["at_1e6"] = "measured"
        elif growth is not None:
            entry["seconds_at_1e6"] = times[-1] * (10**6 / ns[-1]) ** growth
            entry["at_1e6"] = "extrapolated"
        entry["meets"] = {
            "exponent": growth is not None and growth <= GOAL_EXPONENT,
            "rss": entry["rss_ratio"] <= GOAL_RSS_RATIO,
        }
        summary[name] = entry
    full, again = runs.get("export"), runs.get("export_again")
    if full and again:
        ratios = {
            n: again[n]["seconds"] / full[n]["seconds"] for n in full if n in again
        }
        summary["export_again"]["share_of_full"] = ratios
        summary["export_again"]["meets"]["incremental"] = all(
            r <= GOAL_INCREMENTAL for r in ratios.values()
        )
    return summary


def _print(runs: dict[str, dict[int, dict[str, Any]]], summary: dict[str, Any]) -> None:
    print(f"{'step':<13}{'N':>9}{'seconds':>10}{'peak MB':>9}{'opened':>9}  result")
    for name, by_n in runs.items():
        for n, row in sorted(by_n.items()):
            extra = {
                k: v
                for k, v in row.items()
                if k not in ("seconds", "peak_rss_mb", "files_opened", "folders_listed")
            }
            print(
                f"{name:<13}{n:>9}{row['seconds']:>10.3f}{row['peak_rss_mb']:>9.0f}"
                f"{row['files_opened']:>9}  {json.dumps(extra)}"
            )
    print()
    for name, entry in summary.items():
        growth = entry["time_exponent"]
        at = entry.get("seconds_at_1e6")
        print(
            f"{name:<13} time ~ N^{growth if growth is None else round(growth, 2)}, "
            f"peak RSS x{entry['rss_ratio']:.2f} from N={entry['n'][0]} to "
            f"{entry['n'][-1]}"
            + (f", {at:.0f} s at 10^6 ({entry['at_1e6']})" if at else "")
            + (
                f", again after +1 %: {entry['share_of_full']}"
                if "share_of_full" in entry
                else ""
            )
            + f"; goals met: {entry['meets']}"
        )


def run(
    ns: list[int],
    heavy_ns: list[int],
    work: Path,
    keep: bool = False,
    only: list[str] | None = None,
) -> dict:
    """Fabricate each N's run, measure its steps, summarise.

    Args:
        ns: Video counts for the light steps.
        heavy_ns: Video counts for the heavy ones.
        work: The folder that receives the fabricated runs.
        keep: Keep them (else each is removed once measured).
        only: Run just these steps.

    Returns:
        The statistics used, fabrication times, every measurement and the summary.
    """
    stats = sample_statistics()
    runs: dict[str, dict[int, dict[str, Any]]] = {}
    fabricated = {}
    plan = [(n, STEPS, "n") for n in ns] + [(n, HEAVY_STEPS, "heavy") for n in heavy_ns]
    for n, steps, kind in plan:
        named = [*steps, *(OPTIONAL_STEPS if kind == "heavy" else ())]
        chosen = [
            name
            for name in named
            if (name in only if only else name not in OPTIONAL_STEPS)
        ]
        if not chosen:
            continue
        root = work / f"{kind}{n}"
        start = time.perf_counter()
        fabricate(root, n, stats)
        if kind == "heavy":  # every video captioned, for the export
            trees = _partitions(root, "segment_trees").load()
            captioned = _captions_work(root, _manifest(root), trees)
            _partitions(root, "captions").save(captioned)
        fabricated[f"{kind}{n}"] = time.perf_counter() - start
        for name in chosen:
            if name == "export_again":
                add_new_videos(root)
            runs.setdefault(name, {})[n] = measure(name, root)
            print(f"  {name} at N={n}: {runs[name][n]['seconds']:.2f} s", flush=True)
        if not keep:
            shutil.rmtree(root)
    summary = summarise(runs)
    return {
        "statistics": stats,
        "fabricate_s": fabricated,
        "runs": runs,
        "summary": summary,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="*", default=[1000, 10000, 100000])
    parser.add_argument("--heavy-n", type=int, nargs="*", default=[100, 300, 1000])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the fabricated runs")
    parser.add_argument(
        "--steps",
        nargs="+",
        choices=[*STEPS, *HEAVY_STEPS, *OPTIONAL_STEPS],
        help="only these",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="write the results (JSON)"
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-million-", dir=args.workdir))
    try:
        result = run(args.n, args.heavy_n, work, args.keep, args.steps)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    _print(result["runs"], result["summary"])
    if args.out:
        args.out.write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
