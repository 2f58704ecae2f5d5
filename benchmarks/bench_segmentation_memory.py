"""Peak RSS of Stage 1 segmentation on a long 480p video (goal: < 2 GB for 1 hour).

Runs the segmentation nodes' per-video work (streaming decode of 1 frame in 4,
embeddings, temporal Ward, segment tree) in a fresh process and reports its peak
resident memory next to the process's baseline after imports, plus the size of
the embeddings it had to keep.

    .venv/bin/python benchmarks/bench_segmentation_memory.py [--seconds 3600]
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
from action100m.embedders import make_embedder
from action100m.params import SegmentationParams
from action100m.pipelines.segmentation.nodes import build_tree, embed_video
from action100m.video import VideoSource, probe_video
params = SegmentationParams.model_validate(json.loads(sys.argv[2]))
embedder = make_embedder(params.embedder)
embedder.ensure_setup()
info = probe_video(VideoSource("bench", sys.argv[1]))
video = {"video_uid": "bench", "path": sys.argv[1], "metadata": {}, **info.to_dict()}
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
emb = embed_video(embedder, video, params)
tree = build_tree(video, emb, params)
print(json.dumps({"base_kb": base,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "seconds": time.perf_counter() - start,
                  "frames": int(len(emb["frame_times"])),
                  "embedding_mb": emb["embeddings"].nbytes / 2**20,
                  "nodes": len(tree["nodes"])}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3600)
    parser.add_argument(
        "--params",
        default=json.dumps(
            {"embedder": {"backend": "color_histogram", "model_id": None,
                          "window": 1, "window_stride": 1, "batch_size": 64}}
        ),
    )
    args = parser.parse_args()
    cache = os.path.join(tempfile.gettempdir(), "action100m_bench")
    os.makedirs(cache, exist_ok=True)
    start = time.perf_counter()
    path = long_video(os.path.join(cache, f"v{int(args.seconds)}s_480p.mp4"), args.seconds)
    print(f"video ready in {time.perf_counter() - start:.0f} s: {path}")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, path, args.params],
        capture_output=True, text=True, check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"video: {args.seconds:.0f} s, 854x480, 25 fps; sampled frames {result['frames']}")
    print(f"segmentation wall time: {result['seconds']:.1f} s, nodes {result['nodes']}")
    print(f"embeddings kept: {result['embedding_mb']:.1f} MB")
    print(f"peak RSS: {result['peak_kb'] / 1024:.0f} MB "
          f"(after imports and model set-up: {result['base_kb'] / 1024:.0f} MB; goal < 2048 MB)")


if __name__ == "__main__":
    main()
