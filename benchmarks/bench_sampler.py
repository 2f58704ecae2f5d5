"""The 1-of-4 frame sampler vs a bare PyAV loop doing the same decoding and conversion.

Both decode every frame of the same file (the decoder is the floor) and convert
one frame in four to RGB at the embedder's size. Prints seconds and the ratio.

    .venv/bin/python benchmarks/bench_sampler.py [--seconds 120]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import av

from action100m.media.video import VideoSource, even_size, sample_frames
from benchmarks._footage import long_video


def bare_loop(path: str, stride: int, short_side: int) -> int:
    kept = 0
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        size = None
        for index, frame in enumerate(container.decode(stream)):
            if index % stride:
                continue
            size = size or even_size(frame.width, frame.height, short_side)
            frame.to_ndarray(width=size[0], height=size[1], format="rgb24")
            kept += 1
    return kept


def ours(path: str, stride: int, short_side: int) -> int:
    source = VideoSource("bench", path)
    return sum(len(t) for t, _ in sample_frames(source, stride, short_side, 64))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--short-side", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cache = os.path.join(tempfile.gettempdir(), "action100m_bench")
    os.makedirs(cache, exist_ok=True)
    path = long_video(
        os.path.join(cache, f"v{int(args.seconds)}s_480p.mp4"), args.seconds
    )
    best = {"bare": float("inf"), "ours": float("inf")}
    counts = {}
    for _ in range(args.repeats):
        for name, fn in (("bare", bare_loop), ("ours", ours)):
            start = time.perf_counter()
            counts[name] = fn(path, 4, args.short_side)
            best[name] = min(best[name], time.perf_counter() - start)
    assert counts["bare"] == counts["ours"], counts
    print(f"video: {args.seconds:.0f} s 854x480 25 fps, frames kept: {counts['ours']}")
    print(f"bare PyAV loop : {best['bare']:.2f} s (best of {args.repeats})")
    print(f"sample_frames  : {best['ours']:.2f} s")
    print(f"ratio ours/bare: {best['ours'] / best['bare']:.3f}  (goal <= 1.1)")


if __name__ == "__main__":
    main()
