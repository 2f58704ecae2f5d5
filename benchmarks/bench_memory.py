"""Peak RSS of Stage 1 (and Stage 2) on a long 480p video, in a fresh process.

Goals: segmentation < 2 GB, segmentation + captioning with the tiny models < 3 GB
for a 1-hour video. Runs the stages' per-video functions (streaming decode,
embeddings, temporal Ward, tree; then one decoding pass for all captions) and
reports the peak resident memory after each stage.

    .venv/bin/python -m benchmarks.bench_memory [--seconds 3600] [--captioning]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from benchmarks._footage import long_video

CHILD = """
import json, resource, sys, time
from action100m.models.captioners import make_captioner
from action100m.models.embedders import make_embedder
from action100m.core.params import CaptioningParams, SegmentationParams
from action100m.pipelines.captioning.nodes import caption_video
from action100m.pipelines.segmentation.nodes import build_tree, embed_video
from action100m.core.tree import SegmentTree
from action100m.media.video import VideoSource, probe_video

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

path, seg_json, cap_json = sys.argv[1], sys.argv[2], sys.argv[3]
seg = SegmentationParams.model_validate(json.loads(seg_json))
embedder = make_embedder(seg.embedder)
embedder.ensure_setup()
info = probe_video(VideoSource("bench", path))
video = {"video_uid": "bench", "path": path, "metadata": {}, **info.to_dict()}
report = {"after_setup_mb": peak_mb()}
start = time.perf_counter()
emb = embed_video(embedder, video, seg)
tree = SegmentTree.from_dict(build_tree(video, emb, seg))
report.update(segmentation_s=time.perf_counter() - start,
              frames=len(emb["frame_times"]),
              embedding_mb=emb["embeddings"].nbytes / 2**20, nodes=len(tree.nodes),
              leaves=len(tree.leaves()), segmentation_peak_mb=peak_mb())
del emb
if cap_json != "null":
    cap = CaptioningParams.model_validate(json.loads(cap_json))
    plm, llama = make_captioner(cap.plm), make_captioner(cap.llama)
    plm.ensure_setup(); llama.ensure_setup()
    start = time.perf_counter()
    out = caption_video(tree, video, plm, llama, cap)
    report.update(captioning_s=time.perf_counter() - start,
                  caption_errors=len(out["errors"]), captioning_peak_mb=peak_mb())
print(json.dumps(report))
"""

DEMO_SEGMENTATION = {
    "embedder": {
        "backend": "color_histogram",
        "model_id": None,
        "window": 1,
        "window_stride": 1,
        "batch_size": 64,
    },
}


def demo_captioning(models: str) -> dict:
    return {
        "plm": {
            "model_id": os.path.join(models, "perception_lm"),
            "device": "cpu",
            "max_new_tokens": 4,
            "batch_size": 16,
            "caption_prompt": "Describe.",
            "action_prompt": "Action?",
        },
        "llama": {
            "model_id": os.path.join(models, "mllama"),
            "device": "cpu",
            "max_new_tokens": 4,
            "batch_size": 16,
            "prompt": "Describe.",
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3600)
    parser.add_argument("--captioning", action="store_true")
    parser.add_argument("--models", default="data/06_models")
    args = parser.parse_args()
    cache = os.path.join(tempfile.gettempdir(), "action100m_bench")
    os.makedirs(cache, exist_ok=True)
    start = time.perf_counter()
    name = f"v{int(args.seconds)}s_480p.mp4"
    path = long_video(os.path.join(cache, name), args.seconds)
    print(f"video ready in {time.perf_counter() - start:.0f} s: {path}")
    captioning = "null"
    if args.captioning:
        from action100m.demo.tiny_models import build_tiny_models

        build_tiny_models(args.models)
        captioning = json.dumps(demo_captioning(args.models))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, path, json.dumps(DEMO_SEGMENTATION), captioning],
        capture_output=True,
        text=True,
        check=True,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"video: {args.seconds:.0f} s 854x480 25 fps; sampled frames {r['frames']}")
    print(f"after imports and model set-up: {r['after_setup_mb']:.0f} MB")
    print(
        f"segmentation: {r['segmentation_s']:.1f} s, {r['nodes']} nodes, "
        f"embeddings {r['embedding_mb']:.1f} MB, "
        f"peak RSS {r['segmentation_peak_mb']:.0f} MB (goal < 2048)"
    )
    if "captioning_s" in r:
        print(
            f"captioning (tiny models): {r['captioning_s']:.1f} s, "
            f"{r['nodes'] + r['leaves']} frame requests, {r['caption_errors']} errors, "
            f"peak RSS {r['captioning_peak_mb']:.0f} MB (goal < 3072)"
        )


if __name__ == "__main__":
    main()
