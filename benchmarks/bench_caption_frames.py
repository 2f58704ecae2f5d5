"""Frames decoded per node-frame delivered: one pass vs seeking per node.

Stage 2 needs 32 frames of every node and the middle frame of every leaf. Ours
serves all of them from one streaming decode pass (``frames_at_times``); the
baseline seeks to each node's start (the keyframe before it) and decodes to the
node's last wanted frame, as a per-node loader would. Same video, same tree,
same frames delivered.

    .venv/bin/python -m benchmarks.bench_caption_frames [--seconds 120]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import av

from action100m.core.params import CaptioningParams, EmbedderParams, SegmentationParams
from action100m.core.tree import SegmentTree
from action100m.media.video import VideoSource, frames_at_times, probe_video
from action100m.models.embedders import ColorHistogramEmbedder
from action100m.pipelines.captioning.nodes import frame_requests
from action100m.pipelines.segmentation.nodes import build_tree, embed_video
from benchmarks._footage import long_video


def one_pass(source: VideoSource, requests) -> tuple[int, int]:
    from action100m.media import video

    decoded = 0
    real = video.decoded_frames

    def counting(src):
        nonlocal decoded
        for item in real(src):
            decoded += 1
            yield item

    video.decoded_frames = counting
    try:
        delivered = sum(len(f) for _, f in frames_at_times(source, requests))
    finally:
        video.decoded_frames = real
    return decoded, delivered


def seek_per_node(path: str, requests) -> tuple[int, int]:
    decoded = delivered = 0
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        origin = float(stream.start_time or 0) * float(stream.time_base)
        for request in requests:
            wanted = sorted(request.times)
            container.seek(int((wanted[0] + origin) / stream.time_base), stream=stream)
            got, previous = 0, None
            for frame in container.decode(stream):
                decoded += 1
                t = frame.time - origin
                while got < len(wanted) and wanted[got] < t:
                    chosen = previous if previous is not None else frame
                    size = request.output_size(frame.width, frame.height)
                    chosen.to_ndarray(width=size[0], height=size[1], format="rgb24")
                    got += 1
                previous = frame
                if got == len(wanted):
                    break
            delivered += got
    return decoded, delivered


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=120)
    args = parser.parse_args()
    cache = os.path.join(tempfile.gettempdir(), "action100m_bench")
    os.makedirs(cache, exist_ok=True)
    path = long_video(
        os.path.join(cache, f"v{int(args.seconds)}s_480p.mp4"), args.seconds
    )
    source = VideoSource("bench", path)
    video = {
        "video_uid": "bench",
        "path": path,
        "metadata": {},
        **probe_video(source).to_dict(),
    }
    seg = SegmentationParams(
        embedder=EmbedderParams(
            backend="color_histogram", model_id=None, window=1, window_stride=1
        )
    )
    embedder = ColorHistogramEmbedder()
    tree = SegmentTree.from_dict(
        build_tree(video, embed_video(embedder, video, seg), seg)
    )
    params = CaptioningParams.model_validate(
        {"plm": {"caption_prompt": "c", "action_prompt": "a"}, "llama": {"prompt": "p"}}
    )
    requests = frame_requests(tree, params)

    start = time.perf_counter()
    ours_decoded, ours_delivered = one_pass(source, requests)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    naive_decoded, naive_delivered = seek_per_node(path, requests)
    naive_s = time.perf_counter() - start

    print(
        f"video: {args.seconds:.0f} s 854x480 25 fps, {len(tree.nodes)} nodes, "
        f"{len(tree.leaves())} leaves, {len(requests)} frame requests"
    )
    print(
        f"one pass     : {ours_decoded} frames decoded for {ours_delivered} delivered "
        f"({ours_decoded / ours_delivered:.2f} per node-frame), {ours_s:.1f} s"
    )
    print(
        f"seek per node: {naive_decoded} frames decoded for "
        f"{naive_delivered} delivered "
        f"({naive_decoded / naive_delivered:.2f} per node-frame), {naive_s:.1f} s"
    )
    print(
        f"decoded frames naive/ours: {naive_decoded / ours_decoded:.2f}x, "
        f"wall time naive/ours: {naive_s / ours_s:.2f}x"
    )


if __name__ == "__main__":
    main()
