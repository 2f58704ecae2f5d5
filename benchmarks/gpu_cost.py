"""What Stages 1 and 2 cost on one GPU, old settings vs new, end to end.

Builds the paper's models at full size from their published configurations
with random weights (V-JEPA 2 ViT-g-384, PerceptionLM-3B, Llama-3.2-11B-Vision;
bf16, no download), writes a synthetic video and a segment tree with the
release sample's density (84.3 nodes and 42.3 leaves per minute), and runs both
stages through the pipeline's own code (``embed_video``, ``caption_video``)
twice: with every optimisation switched off (no prefetching, a prompt per
question, static batches of 8 in arrival order through ``generate``) and on (the
defaults: the continuous-batching engine, one prefix per node). Every
answer's length is forced (a logits processor ends each row at its own length)
to a draw from the release's word counts of ``plm_caption``, ``plm_action`` and
``llama3_caption`` (1.3 tokens per word, at most ``--max-new-tokens``); a draw
depends only on the request's frames and prompt, so both runs write the same
lengths.

Prints GPU-seconds per video-minute per model, GPU-hours per video-hour per
stage (on the card named in the report), the ratio new/old, the work counters
with each captioner's slot occupancy (tokens made per paid row-step); exits 1 if
any request failed. ``--old-seconds`` runs the old settings on a shorter video
of the same density (they are slow: a 60 s video takes minutes of GPU time). ``--tiny``
runs the same code on CPU with the tiny models (random weights, tiny configs).
On stderr, each model's measured seconds beside its roofline and calibrated
prediction (``action100m.runtime.cost``, the card of the GPU); ``--write-card
conf/cards/<gpu>.yml`` writes that card's calibration measured by this run.

    PYTHONPATH=src python -m benchmarks.gpu_cost [--seconds 60] [--out FILE.json]
    PYTHONPATH=src python -m benchmarks.gpu_cost --tiny
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import av
import numpy as np
import torch

from action100m.core.params import CaptioningParams, EmbedderParams, SegmentationParams
from action100m.core.tree import Node, SegmentTree, make_node_id
from action100m.models.captioners import CaptionRequest, TransformersCaptioner
from action100m.models.embedders import VJEPA2Embedder
from action100m.models.work import slot_occupancy
from action100m.pipelines.captioning.nodes import caption_video
from action100m.pipelines.segmentation.nodes import embed_video

NODES_PER_MINUTE = 84.3  # the release sample: 2,740 nodes in 32.5 minutes
LEAVES_PER_MINUTE = 42.3  # 1,373 leaves
TOKENS_PER_WORD = 1.3
# Words per answer in the release sample, at quantiles 0, 5, ..., 100 %.
RELEASE_WORDS = {
    "plm_caption": [5, 15, 20, 26, 30, 34, 39, 44, 48, 54, 59, 66, 73, 81, 91, 102,
                    117, 135, 160, 205, 990],
    "plm_action": [1, 3, 3, 3, 4, 4, 4, 5, 5, 6, 6, 6, 7, 7, 8, 8, 9, 9, 10, 12, 32],
    "llama3_caption": [21, 85, 97, 105, 113, 121, 129, 136, 144, 152, 161, 169, 176,
                       183, 192, 201, 211, 222, 236, 259, 433],
}  # fmt: skip
# Every optimisation off (the code before them), and the defaults.
OLD = {"prefetch": 0, "share": False, "by_prompt": False, "plm": 8, "llama": 8,
       "engine": "static"}  # fmt: skip
NEW = {"prefetch": 2, "share": True, "by_prompt": True, "plm": 64, "llama": 64,
       "engine": "continuous"}  # fmt: skip


def release_words(path: str | None) -> dict[str, list[float]]:
    """Quantiles of words per field, from ``path`` or the table above."""
    if not path:
        return RELEASE_WORDS
    import pyarrow.parquet as pq

    counts: dict[str, list[int]] = {field: [] for field in RELEASE_WORDS}
    for row in pq.read_table(path, columns=["nodes"]).to_pylist():
        for node in row["nodes"]:
            for field, found in counts.items():
                if node[field]:
                    found.append(len(node[field].split()))
    grid = np.arange(0, 101, 5)
    return {f: list(np.percentile(c, grid)) for f, c in counts.items()}


def forced_length(request: CaptionRequest, field: str, words, cap: int) -> int:
    """A length drawn from ``field``'s distribution by the request's content."""
    digest = hashlib.blake2b(digest_size=8)
    for frame in (request.frames[0], request.frames[-1]):
        digest.update(np.ascontiguousarray(frame).tobytes())
    digest.update(request.prompt.encode())
    u = int.from_bytes(digest.digest(), "big") / 2**64
    value = np.interp(u * 100, np.arange(0, 101, 5), words[field]) * TOKENS_PER_WORD
    return int(min(cap, max(1, round(value))))


class ForcedLengths:
    """Logits processor: row ``i`` ends (EOS) after exactly ``targets[i]`` tokens."""

    def __init__(self, targets: list[int], eos: int) -> None:
        self.targets, self.eos, self.start = targets, eos, None

    def __call__(self, input_ids, scores):
        if self.start is None:
            self.start = input_ids.shape[1]
        step = input_ids.shape[1] - self.start
        for row, target in enumerate(self.targets):
            if step < target:
                scores[row, self.eos] = -float("inf")
            else:
                scores[row, :] = -float("inf")
                scores[row, self.eos] = 0.0
        return scores


class BenchCaptioner(TransformersCaptioner):
    """The project's captioner, timed, with every answer's length forced."""

    def __init__(self, *args, fields: dict[str, str], words, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields, self.words = fields, words
        self.seconds, self.failed, self.texts = 0.0, 0, {}

    def _settings(self, rows):
        targets = [
            forced_length(r, self.fields[r.prompt], self.words, self.max_new_tokens)
            for r in rows
        ]
        eos = self.processor.tokenizer.eos_token_id
        return super()._settings(rows) | {
            "logits_processor": [ForcedLengths(targets, eos)]
        }

    def question_limits(self, request):
        target = forced_length(
            request, self.fields[request.prompt], self.words, self.max_new_tokens
        )
        return {
            "max_new_tokens": self.max_new_tokens,
            "min_new_tokens": target,
            "stop_at": target,
        }

    def __call__(self, batch):
        if self.streams:
            results = super().__call__(batch)
            self.failed += sum(not isinstance(r, str) for r in results)
            return results
        sync(self.device)
        start = time.perf_counter()
        results = super().__call__(batch)
        sync(self.device)
        self.seconds += time.perf_counter() - start
        self.failed += sum(not isinstance(r, str) for r in results)
        return results


_T0 = time.perf_counter()


def say(text: str) -> None:
    """A progress line on stderr with the seconds since start (long GPU runs)."""
    print(f"[{time.perf_counter() - _T0:7.1f} s] {text}", file=sys.stderr, flush=True)  # noqa: T201


def sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def synthetic_video(path: str, seconds: float, fps: int = 30) -> str:
    """640x360 H.264: moving colour gradients, a hard cut every 3-9 s."""
    rng = np.random.default_rng(0)
    width, height = 640, 360
    ys, xs = np.mgrid[:height, :width].astype(np.float32)
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "28"}
        shot_end, colours = 0, None
        for i in range(int(seconds * fps)):
            if i >= shot_end:
                shot_end = i + int(rng.uniform(3, 9) * fps)
                colours = rng.uniform(0, 255, (3, 3))
            phase = i / fps
            frame = np.stack(
                [
                    (c[0] + c[1] * np.sin(xs / 50 + phase) + c[2] * np.cos(ys / 40))
                    % 256
                    for c in colours
                ],
                axis=-1,
            ).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, "rgb24")))
        container.mux(stream.encode())
    return path


def synthetic_tree(uid: str, seconds: float) -> SegmentTree:
    """A full binary tree with the release's leaves per minute (random splits)."""
    rng = np.random.default_rng(1)
    leaves = max(1, round(LEAVES_PER_MINUTE * seconds / 60))
    children: dict[tuple, list[tuple]] = {}
    spans = [(0.0, float(seconds))]
    while len(spans) < leaves:
        spans.sort(key=lambda s: s[1] - s[0])
        start, end = spans.pop()
        cut = round(start + (end - start) * rng.uniform(0.35, 0.65), 2)
        children[(start, end)] = [(start, cut), (cut, end)]
        spans += children[(start, end)]
    nodes, level = [], [((0.0, float(seconds)), None)]
    depth = 0
    while level:
        following = []
        for span, parent in level:
            node_id = make_node_id(uid, *span)
            nodes.append(Node(node_id, parent, depth, *span))
            following += [(child, node_id) for child in children.get(span, [])]
        level, depth = following, depth + 1
    return SegmentTree(uid, nodes)


def build_models(tiny: bool, folder: str, device: str):
    """(V-JEPA 2 folder, PLM parts, Llama parts) at full size or tiny."""
    from action100m.demo.tiny_models import (
        build_tiny_mllama,
        build_tiny_perception_lm,
        build_tiny_vjepa2,
    )
    from benchmarks import gpu_captioners, gpu_vjepa2

    vjepa = os.path.join(folder, "vjepa2")
    if tiny:
        build_tiny_vjepa2(vjepa)
        return (
            vjepa,
            build_tiny_perception_lm(os.path.join(folder, "plm")),
            (build_tiny_mllama(os.path.join(folder, "mllama"))),
        )
    gpu_vjepa2.build(vjepa, gpu_vjepa2.VITG_384, device)
    return vjepa, gpu_captioners.plm_parts(), gpu_captioners.llama_parts()


CAPTIONING = {
    "plm": {
        "caption_prompt": "Describe this video in detail.",
        "action_prompt": "What is the main action in this video?",
    },
    "llama": {"prompt": "Describe this image in detail."},
}


def make_captioner(parts, device, dtype, **settings) -> BenchCaptioner:
    if isinstance(parts, str):  # a saved tiny model
        captioner = BenchCaptioner(parts, device=device, dtype="float32", **settings)
        captioner.ensure_setup()
        return captioner
    model_class, config, processor = parts
    with torch.device(device):
        model = model_class(config).to(dtype).eval()
    captioner = BenchCaptioner("random-weights", device=device, **settings)
    captioner.attach(model, processor, dtype)
    tokenizer = processor.tokenizer
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return captioner


def load_models(tiny: bool, folder: str, words, max_new_tokens: int) -> dict:
    """The embedder and both captioners, set up once for every run."""
    device = "cpu" if tiny else "cuda"
    dtype = torch.float32 if tiny else torch.bfloat16
    vjepa, plm_parts, llama_parts = build_models(tiny, folder, device)
    window, stride = (8, 4) if tiny else (64, 8)
    embedder = VJEPA2Embedder(
        vjepa,
        device=device,
        dtype=str(dtype).removeprefix("torch."),
        window=window,
        window_stride=stride,
    )
    embedder.ensure_setup()
    say("V-JEPA 2 loaded")
    blank = np.zeros((window, 64, 64, 3), np.uint8)
    embedder(embedder.stack([embedder.preprocess(blank)]))  # warm-up
    fields = {
        CAPTIONING["plm"]["caption_prompt"]: "plm_caption",
        CAPTIONING["plm"]["action_prompt"]: "plm_action",
        CAPTIONING["llama"]["prompt"]: "llama3_caption",
    }
    common = {"fields": fields, "words": words, "max_new_tokens": max_new_tokens}
    plm = make_captioner(plm_parts, device, dtype, **common)
    say("PerceptionLM built")
    llama = make_captioner(llama_parts, device, dtype, **common)
    say("Llama built")
    plm.role, llama.role = "plm", "llama"
    frames = [np.zeros((64, 64, 3), np.uint8)] * 2
    plm([CaptionRequest(frames, CAPTIONING["plm"]["action_prompt"], "video", "w")])
    llama([CaptionRequest(frames[:1], CAPTIONING["llama"]["prompt"], "image")])
    say("models warmed up")
    return {"embedder": embedder, "plm": plm, "llama": llama, "device": device,
            "vjepa": vjepa, "window": window, "stride": stride}  # fmt: skip


def watch(stop: threading.Event, *models, every_s: float = 20.0) -> None:
    """Stage 2's progress on stderr: each captioner's answers and steps so far."""
    while not stop.wait(every_s):
        parts = []
        for model in models:
            work = model.work.as_dict()
            parts.append(
                f"{model.role} {work['generated_tokens']} tokens, "
                f"{work['decode_steps']} steps ({work['drain_steps']} draining)"
            )
        say("stage 2 so far: " + "; ".join(parts))


def copies_of(video: dict, tree: SegmentTree, count: int) -> list[tuple]:
    """``count`` videos with the same frames under their own uids."""
    found = []
    for k in range(count):
        uid = video["video_uid"] if k == 0 else f"{video['video_uid']}-{k}"
        nodes = [
            Node(make_node_id(uid, n.start, n.end), None, n.level, n.start, n.end)
            for n in tree.nodes
        ]
        ids = {old.node_id: new.node_id for old, new in zip(tree.nodes, nodes)}
        for old, new in zip(tree.nodes, nodes):
            new.parent_id = ids.get(old.parent_id)
        found.append((video | {"video_uid": uid}, SegmentTree(uid, nodes)))
    return found


def run(
    setting: dict, models: dict, video, tree, max_new_tokens: int, in_flight: int = 1
) -> dict:
    """Stage 1 of one video and Stage 2 of ``in_flight`` copies of it at once,
    timed; figures are per video."""
    device, embedder = models["device"], models["embedder"]
    plm, llama = models["plm"], models["llama"]
    seg = SegmentationParams(
        prefetch=setting["prefetch"],
        embedder=EmbedderParams(
            model_id=models["vjepa"],
            window=models["window"],
            window_stride=models["stride"],
        ),
    )
    embedder.work.take()
    sync(device)
    start = time.perf_counter()
    embed_video(embedder, video, seg)
    sync(device)
    stage1 = time.perf_counter() - start
    say(f"stage 1: {stage1:.1f} s")
    report: dict[str, Any] = {"embedder": {"seconds": stage1, **embedder.work.take()}}
    cap = CaptioningParams.model_validate(
        {
            role: CAPTIONING[role]
            | {"batch_size": setting[role], "max_new_tokens": max_new_tokens}
            for role in ("plm", "llama")
        }
    )
    plm.share_video_prefix = setting["share"]
    llama.cache_implementation = setting.get("llama_cache")
    for model in (plm, llama):
        model.teardown_engine()
        model.engine = setting["engine"]
        model.batch_size, model.batch_by_prompt = (
            setting[model.role],
            setting["by_prompt"],
        )
        model.seconds, model.failed, model._memory_cap = 0.0, 0, None
        model.work.take()
    sync(device)
    start = time.perf_counter()
    watching = threading.Event()
    watcher = threading.Thread(target=watch, args=(watching, plm, llama), daemon=True)
    watcher.start()
    with ThreadPoolExecutor(in_flight) as pool:
        results = list(
            pool.map(
                lambda pair: caption_video(pair[1], pair[0], plm, llama, cap),
                copies_of(video, tree, in_flight),
            )
        )
    sync(device)
    watching.set()
    report["stage2_seconds"] = (time.perf_counter() - start) / in_flight
    report["videos_in_flight"] = in_flight
    say(f"stage 2: {report['stage2_seconds'] * in_flight:.1f} s, {in_flight} videos")
    for name, model in (("plm", plm), ("llama", llama)):
        engine = model.slot_engine
        work = {
            counter: sum(r["work"][name][counter] for r in results)
            for counter in results[0]["work"][name]
        }
        seconds = engine.busy_s if engine is not None else model.seconds
        report[name] = {
            "seconds": seconds / in_flight,
            "failed": model.failed,
            "slots": engine.slots if engine is not None else setting[name],
            "decoding": engine.graph_mode if engine is not None else "generate",
            **{k: v / in_flight for k, v in work.items()},
            "slot_occupancy": slot_occupancy(work) if work["slot_steps"] else None,
            "drain_share": work["drain_steps"] / max(1, work["decode_steps"]),
            "ms_per_decode_step": 1000 * engine.step_s / max(1, work["decode_steps"])
            if engine is not None
            else None,
            "bucket_steps": dict(engine.bucket_steps) if engine is not None else None,
        }
        model.teardown_engine()
    errors = sum(len(r["errors"]) for r in results)
    report["failed_requests"] = plm.failed + llama.failed + errors
    report["captions"] = results[0]["captions"]
    if device == "cuda":
        torch.cuda.empty_cache()
    return report


def fastest(best: dict | None, report: dict) -> dict:
    """``report`` with each time replaced by the smaller of it and ``best``'s."""
    if best is None:
        return report
    for name in ("embedder", "plm", "llama"):
        report[name]["seconds"] = min(report[name]["seconds"], best[name]["seconds"])
    report["stage2_seconds"] = min(report["stage2_seconds"], best["stage2_seconds"])
    report["failed_requests"] += best["failed_requests"]
    return report


def summarise(old: dict, new: dict, old_tree: SegmentTree, tree: SegmentTree) -> dict:
    """GPU-seconds per video-minute, GPU-hours per video-hour, new/old.

    ``old`` ran on ``old_tree``'s video, ``new`` on ``tree``'s (the same density).
    """
    was_min = old_tree.nodes[0].end / 60
    now_min = tree.nodes[0].end / 60
    rows: dict[str, Any] = {}
    for name in ("embedder", "plm", "llama"):
        was, now = old[name]["seconds"] / was_min, new[name]["seconds"] / now_min
        rows[name] = {
            "old_gpu_s_per_video_minute": was,
            "new_gpu_s_per_video_minute": now,
            "new_over_old": now / was,
        }
    for name, per, count in (
        ("plm", "node", lambda t: len(t.nodes)),
        ("llama", "leaf", lambda t: len(t.leaves())),
    ):
        for label, report, t in (("old", old, old_tree), ("new", new, tree)):
            tokens = report[name]["prompt_tokens"] / count(t)
            rows[name][f"{label}_prompt_tokens_per_{per}"] = tokens
            rows[name][f"{label}_slot_occupancy"] = report[name]["slot_occupancy"]
    stages = {
        "stage1": (old["embedder"]["seconds"], new["embedder"]["seconds"]),
        "stage2": (old["stage2_seconds"], new["stage2_seconds"]),
    }
    stages["stages_1_2"] = tuple(sum(pair) for pair in zip(*stages.values()))
    for stage, (was, now) in stages.items():
        rows[stage] = {
            "old_gpu_hours_per_video_hour": was / 60 / was_min,
            "new_gpu_hours_per_video_hour": now / 60 / now_min,
            "new_over_old": (now / now_min) / (was / was_min),
        }
    return rows


def same_captions(old: dict, new: dict) -> str:
    """Nodes whose three captions are equal in both runs of one video."""
    same = sum(old["captions"][n] == new["captions"][n] for n in old["captions"])
    return f"{same}/{len(old['captions'])} nodes"


def report_prediction(summary: dict, args: argparse.Namespace) -> None:
    """Roofline and calibrated seconds per role beside the measured ones (the
    real-size models' facts applied to this run's counters; a tiny run's
    counters are the tiny models'), and the card written with ``--write-card``."""
    from action100m.runtime import cost

    found = cost.card_for_device(summary["device"])
    card = found or cost.load_card("h200")
    say(f"roofline on {card.name} from this run's counters:\n"
        + cost.measured_vs_predicted(summary, card))  # fmt: skip
    if args.write_card:
        source = args.out or "benchmarks/gpu_cost.py run"
        today = time.strftime("%Y-%m-%d", time.gmtime())
        written = cost.write_card(args.write_card, summary, source, today, found)
        say(f"{args.write_card}: calibration {written.calibration}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true", help="CPU run, tiny models")
    parser.add_argument("--seconds", type=float, default=None, help="video length")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--release-sample", default=None, help="recompute lengths")
    parser.add_argument("--repeats", type=int, default=None, help="old+new rounds")
    parser.add_argument(
        "--llama-static-cache",
        action="store_true",
        help="new run: Llama with a static KV cache (compilation time included)",
    )
    parser.add_argument(
        "--old-seconds",
        type=float,
        default=None,
        help="old settings on a video this long (default: --seconds)",
    )
    parser.add_argument(
        "--videos-in-flight",
        type=int,
        default=1,
        help="new settings: this many copies of the video captioned at once "
        "(captioning.videos_in_flight); figures stay per video",
    )
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--write-card",
        default=None,
        help="write (or update) this card YAML with the calibration measured here",
    )
    args = parser.parse_args(argv)
    new = NEW | {"llama_cache": "static" if args.llama_static_cache else None}
    if args.tiny:  # CPU: fewer slots than a minute's nodes, so requests wait
        new |= {"plm": 16, "llama": 16}
    args.repeats = args.repeats or (2 if args.tiny else 1)
    args.seconds = args.seconds or (8.0 if args.tiny else 60.0)
    args.max_new_tokens = args.max_new_tokens or 1024
    args.old_seconds = min(args.old_seconds or args.seconds, args.seconds)
    device = "cpu" if args.tiny else "cuda"
    words = release_words(args.release_sample)
    folder = tempfile.mkdtemp(prefix="gpu_cost_")
    start = time.perf_counter()
    models = load_models(args.tiny, folder, words, args.max_new_tokens)
    videos = {}
    for seconds in sorted({args.seconds, args.old_seconds}):
        path = synthetic_video(os.path.join(folder, f"video{seconds:g}.mp4"), seconds)
        videos[seconds] = (
            {"video_uid": "synthetic", "path": path, "duration": seconds,
             "width": 640, "height": 360, "metadata": {}},
            synthetic_tree("synthetic", seconds),
        )  # fmt: skip
    setup_s = time.perf_counter() - start
    plan = [("old", OLD, args.old_seconds), ("new", new, args.seconds)]
    if args.old_seconds != args.seconds:  # the captions compared on one video
        plan.append(("new_short", new, args.old_seconds))
    reports: dict[str, dict] = {}
    for _ in range(args.repeats):  # alternating; each measure keeps its best
        for name, setting, seconds in plan:
            video, tree = videos[seconds]
            say(f"{name} settings: {len(tree.nodes)} nodes, {seconds:g} s video")
            in_flight = args.videos_in_flight if name == "new" else 1
            report = run(
                setting, models, video, tree, args.max_new_tokens, in_flight
            )
            reports[name] = fastest(reports.get(name), report)
    tree, old_tree = videos[args.seconds][1], videos[args.old_seconds][1]
    compared = reports.get("new_short", reports["new"])
    counters = ("calls", "frames", "prompt_tokens", "generated_tokens",
                "decode_steps", "slot_steps", "busy_tokens", "drain_steps",
                "prefill_tokens", "vision_frames")  # fmt: skip
    summary = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "video_seconds": args.seconds,
        "old_video_seconds": args.old_seconds,
        "videos_in_flight": args.videos_in_flight,
        "max_new_tokens": args.max_new_tokens,
        "repeats": args.repeats,
        "nodes": len(tree.nodes),
        "leaves": len(tree.leaves()),
        "setup_s": setup_s,
        "settings": {"old": OLD, "new": new},
        **summarise(reports["old"], reports["new"], old_tree, tree),
        "same_captions": same_captions(reports["old"], compared),
        "engine": {m: {k: reports["new"][m][k]
                           for k in ("slots", "decoding", "ms_per_decode_step",
                                     "drain_share", "bucket_steps")}
                   for m in ("plm", "llama")},
        "failed_requests": {k: r["failed_requests"] for k, r in reports.items()},
        "work": {k: {m: {c: r[m][c] for c in counters if c in r[m]}
                     for m in ("embedder", "plm", "llama")}
                 for k, r in reports.items()},
        "total_s": time.perf_counter() - start,
    }  # fmt: skip
    text = json.dumps(summary, indent=1)
    print(text)  # noqa: T201
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text)
    report_prediction(summary, args)
    failed = sum(summary["failed_requests"].values())
    if failed:
        print(f"{failed} requests failed", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
