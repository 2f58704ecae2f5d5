"""Both captioner backends on real parts: tiny real models, a loopback server."""

from __future__ import annotations

import base64
import io
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from action100m.captioners import (
    CaptionFailure,
    CaptionRequest,
    OpenAICaptioner,
    TransformersCaptioner,
    make_captioner,
)
from action100m.params import CaptioningParams, LlamaParams, PLMParams
from action100m.pipelines.captioning.nodes import caption_video
from tests.openai_server import FakeOpenAIServer
from tests.pipelines.segmentation.test_nodes import _tree, _video


def _frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (40, 60, 3), dtype=np.uint8) for _ in range(n)]


def test_tiny_perception_lm_captions_video_batches(tiny_models):
    captioner = TransformersCaptioner(
        str(tiny_models["perception_lm"]), device="cpu", batch_size=3, max_new_tokens=6
    )
    captioner.ensure_setup()
    assert type(captioner.model).__name__ == "PerceptionLMForConditionalGeneration"
    requests = [
        CaptionRequest(_frames(32, s), f"describe {s}", "video") for s in range(4)
    ]
    texts = captioner(requests)
    assert len(texts) == 4
    assert all(isinstance(t, str) and t for t in texts)
    assert all(len(t.split()) <= 6 for t in texts)
    # Greedy and seeded: the same request gives the same text, batched or not.
    assert captioner(requests[:1]) == texts[:1]
    assert captioner.describe()["model_class"] == "PerceptionLMForConditionalGeneration"


def test_tiny_mllama_captions_single_frames(tiny_models):
    captioner = TransformersCaptioner(
        str(tiny_models["mllama"]), device="cpu", batch_size=2, max_new_tokens=5
    )
    captioner.ensure_setup()
    assert type(captioner.model).__name__ == "MllamaForConditionalGeneration"
    texts = captioner(
        [CaptionRequest(_frames(1, s), "describe", "image") for s in range(3)]
    )
    assert len(texts) == 3 and all(isinstance(t, str) and t for t in texts)


def test_failing_request_is_isolated(tiny_models):
    captioner = TransformersCaptioner(
        str(tiny_models["mllama"]), device="cpu", batch_size=3, max_new_tokens=3
    )
    captioner.ensure_setup()
    bad = CaptionRequest([np.zeros((0, 0, 3), dtype=np.uint8)], "describe", "image")
    texts = captioner([CaptionRequest(_frames(1), "describe", "image"), bad])
    assert isinstance(texts[0], str)
    assert isinstance(texts[1], CaptionFailure)


def _openai(server_url: str, **kwargs) -> OpenAICaptioner:
    settings = {"max_attempts": 3, "timeout_s": 2.0, "backoff_s": 0.01} | kwargs
    captioner = OpenAICaptioner("served-model", base_url=server_url, **settings)
    captioner.ensure_setup()
    return captioner


def test_openai_backend_sends_images_and_prompt():
    with FakeOpenAIServer() as server:
        frames = _frames(3)
        texts = _openai(server.base_url)(
            [CaptionRequest(frames, "describe this video in detail", "video")]
        )
    assert texts == ["answer 1"]
    body = server.requests[0]
    assert body["model"] == "served-model" and body["temperature"] == 0.0
    content = body["messages"][0]["content"]
    images = [c["image_url"]["url"] for c in content if c["type"] == "image_url"]
    assert [c["text"] for c in content if c["type"] == "text"] == [
        "describe this video in detail"
    ]
    assert len(images) == 3
    decoded = Image.open(io.BytesIO(base64.b64decode(images[0].split(",", 1)[1])))
    assert decoded.size == (60, 40) and images[0].startswith("data:image/jpeg;base64,")


@pytest.mark.parametrize(
    ("script", "attempts"),
    [(["500", "500"], 3), (["429"], 2), (["empty"], 2), (["sleep:3"], 2)],
)
def test_openai_backend_retries_transient_faults(script, attempts):
    with FakeOpenAIServer() as server:
        server.script = list(script)
        (text,) = _openai(server.base_url, timeout_s=1.0)(
            [CaptionRequest(_frames(1), "p", "image")]
        )
    assert isinstance(text, str) and text.startswith("answer")
    assert len(server.requests) == attempts


@pytest.mark.parametrize(
    ("default", "reason", "attempts"),
    [
        ("500", "HTTP 500", 3),
        ("429", "HTTP 429", 3),
        ("sleep:3", "timed out", 3),
        ("400", "HTTP 400", 1),
    ],
)
def test_openai_backend_records_persistent_faults(default, reason, attempts):
    with FakeOpenAIServer() as server:
        server.default = default
        results = _openai(server.base_url, timeout_s=1.0)(
            [CaptionRequest(_frames(1), "p", "image")]
        )
    (failure,) = results
    assert isinstance(failure, CaptionFailure) and reason in failure.reason
    assert len(server.requests) == attempts


def test_openai_backend_records_refused_connections():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    results = _openai(f"http://127.0.0.1:{port}/v1")(
        [CaptionRequest(_frames(1), "p", "image")] * 2
    )
    assert all(
        isinstance(r, CaptionFailure) and "connection error" in r.reason
        for r in results
    )


def test_openai_backend_bounds_concurrency():
    with FakeOpenAIServer() as server:
        server.default = "sleep:0.2"
        captioner = _openai(server.base_url, max_concurrency=2)
        start = time.perf_counter()
        results = captioner([CaptionRequest(_frames(1), "p", "image")] * 6)
        elapsed = time.perf_counter() - start
    assert all(isinstance(r, str) for r in results)
    assert elapsed >= 0.55  # 6 requests, 2 at a time, 0.2 s each


def _captioning_params(server_url: str, max_concurrency: int) -> CaptioningParams:
    served = {
        "backend": "openai",
        "base_url": server_url,
        "batch_size": 1,
        "max_concurrency": max_concurrency,
    }
    return CaptioningParams(
        plm=PLMParams(
            **served, num_frames=4, frame_size=32, caption_prompt="c", action_prompt="a"
        ),
        llama=LlamaParams(**served, frame_short_side=32, prompt="p"),
    )


def test_served_captioner_keeps_max_concurrency_in_flight_across_nodes_and_videos(
    cut_videos,
):
    folder, _ = cut_videos
    trees = {uid: _tree(folder, uid) for uid in ("cuts_a", "cuts_b")}
    with FakeOpenAIServer() as server:
        server.default = "sleep:0.3"
        params = _captioning_params(server.base_url, max_concurrency=6)
        # One client for both roles and both videos, as one worker holds it.
        captioner = make_captioner(params.plm)
        captioner.ensure_setup()
        with ThreadPoolExecutor(2) as pool:
            results = list(
                pool.map(
                    lambda uid: caption_video(
                        trees[uid], _video(folder, uid), captioner, captioner, params
                    ),
                    trees,
                )
            )
        captioner.close()
    # Batches of one node (two requests) used to cap it at 2 per video.
    assert server.peak_in_flight == 6
    expected = sum(2 * len(t.nodes) + len(t.leaves()) for t in trees.values())
    assert len(server.requests) == expected
    for tree, result in zip(trees.values(), results, strict=True):
        assert result["errors"] == []
        assert all(
            result["captions"][n.node_id]["plm_caption"].startswith("answer")
            for n in tree.nodes
        )
