"""Frame selection for captioning, on a video whose frames show their own index."""

from __future__ import annotations

import av
import numpy as np
import pytest

import action100m.media.video as video_module
from action100m.core.params import CaptioningParams
from action100m.core.tree import Node, SegmentTree, make_node_id
from action100m.media.video import FrameRequest, VideoSource, frames_at_times
from action100m.pipelines.captioning.nodes import (
    frame_requests,
    node_frame_times,
    square_frame,
)

FPS = 25
BITS = 10
STRIPE = 16


def _encode(index: int) -> np.ndarray:
    bits = [(index >> b) & 1 for b in range(BITS)]
    row = np.repeat(np.array(bits, dtype=np.uint8) * 255, STRIPE)
    return np.repeat(np.repeat(row[None, :, None], 48, axis=0), 3, axis=2)


def _decode(frame: np.ndarray) -> int:
    # Works at any output size: read the middle of each stripe.
    width = frame.shape[1]
    centres = ((np.arange(BITS) + 0.5) * width / BITS).astype(int)
    bits = frame[:, centres].mean(axis=(0, 2)) > 127
    return int(sum(int(b) << i for i, b in enumerate(bits)))


@pytest.fixture(scope="module")
def counting_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("counting") / "counting.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = BITS * STRIPE, 48, "yuv420p"
        stream.options = {"crf": "18"}
        for i in range(250):  # 10 s
            frame = av.VideoFrame.from_ndarray(_encode(i), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def _tree() -> SegmentTree:
    spans = [(0.0, 10.0), (0.0, 3.3), (3.3, 10.0), (3.3, 4.1), (4.1, 10.0)]
    parents = [None, 0, 0, 2, 2]
    ids = [make_node_id("counting", s, e) for s, e in spans]
    nodes = [
        Node(
            ids[i],
            None if p is None else ids[p],
            0 if p is None else (1 if p == 0 else 2),
            s,
            e,
        )
        for i, ((s, e), p) in enumerate(zip(spans, parents, strict=True))
    ]
    return SegmentTree("counting", nodes)


def _nearest_index(t: float) -> int:
    # The frame nearest to t; a tie goes to the earlier frame.
    return int(np.ceil(t * FPS - 0.5))


def test_frames_are_the_nearest_decoded_frames_in_one_pass(counting_video, monkeypatch):
    calls = []
    real = video_module.decoded_frames

    def counted(source):
        calls.append(source.path)
        return real(source)

    monkeypatch.setattr(video_module, "decoded_frames", counted)
    params = CaptioningParams.model_validate(
        {
            "plm": {
                "caption_prompt": "c",
                "action_prompt": "a",
                "num_frames": 32,
                "frame_size": 64,
            },
            "llama": {"prompt": "p", "frame_short_side": 96},
        }
    )
    tree = _tree()
    video = {"width": BITS * STRIPE, "height": 48}
    requests = frame_requests(tree, params, video)
    got = dict(frames_at_times(VideoSource("counting", str(counting_video)), requests))
    assert len(calls) == 1  # one decoding pass for every node of the video
    assert len(got) == len(tree.nodes) + len(tree.leaves())
    for node in tree.nodes:
        frames = got[("plm", node.node_id)]
        # Decoded at about the letterbox's size (160x48 -> 64x20), aspect kept.
        assert len(frames) == 32 and frames[0].shape == (20, 64, 3)
        indices = [_decode(f) for f in frames]
        expected = [_nearest_index(t) for t in node_frame_times(node, 32)]
        assert indices == expected
        assert all(node.start - 0.5 / FPS <= i / FPS <= node.end for i in indices)
    for leaf in tree.leaves():
        (frame,) = got[("llama", leaf.node_id)]
        assert frame.shape == (96, 320, 3)  # shorter side 96, aspect kept
        assert _decode(frame) == _nearest_index((leaf.start + leaf.end) / 2)


def test_requests_are_released_as_soon_as_complete(counting_video):
    requests = [
        FrameRequest("late", (9.0,)),
        FrameRequest("early", (0.5, 1.0)),
        FrameRequest("empty", ()),
        FrameRequest("end", (12.0,)),  # past the last frame: the last frame
    ]
    order = [
        key
        for key, _ in frames_at_times(VideoSource("c", str(counting_video)), requests)
    ]
    assert order == ["empty", "early", "late", "end"]
    (last,) = dict(frames_at_times(VideoSource("c", str(counting_video)), requests))[
        "end"
    ]
    assert _decode(last) == 249


@pytest.mark.parametrize("aspect", ["pad", "crop"])
def test_square_frames_keep_the_aspect_ratio(aspect):
    # A 160x48 frame: a white disc on black, and the frame's index in stripes.
    frame = _encode(613)
    rows, cols = np.mgrid[:48, :160]
    disc = (rows - 24) ** 2 + (cols - 80) ** 2 <= 20**2
    frame = frame.copy()
    frame[disc] = [255, 0, 0]
    square = square_frame(frame, 64, aspect)
    assert square.shape == (64, 64, 3) and square.dtype == np.uint8
    red = (square[..., 0] > 200) & (square[..., 1] < 60) & (square[..., 2] < 60)
    ys, xs = np.nonzero(red)
    height, width = np.ptp(ys) + 1, np.ptp(xs) + 1
    assert abs(height - width) <= 2  # the disc stays round: nothing stretched
    if aspect == "pad":
        # 160x48 fits as 64x19 (rounded), centred between black bars.
        assert not square[:22].any() and not square[-22:].any()
        assert square[22:41].any()
        assert abs(height - 41 * 64 / 160) <= 2
    else:
        # Height 48 -> 64: the disc grows by 4/3; the middle 64 columns are kept.
        assert abs(height - 41 * 64 / 48) <= 2
