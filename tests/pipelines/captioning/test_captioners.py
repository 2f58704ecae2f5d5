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

from action100m.core.params import CaptioningParams, LlamaParams, PLMParams
from action100m.models.captioners import (
    CaptionFailure,
    CaptionRequest,
    OpenAICaptioner,
    TransformersCaptioner,
    make_captioner,
)
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


def _sensitive(folder, **settings) -> TransformersCaptioner:
    """A tiny captioner whose weights are redrawn larger, so that its text depends
    on frames and prompt."""
    import torch

    captioner = TransformersCaptioner(str(folder), device="cpu", **settings)
    captioner.ensure_setup()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in captioner.model.parameters():
            if parameter.dim() > 1:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return captioner


def _node_requests(frame_counts: tuple[int, ...]) -> list[CaptionRequest]:
    requests = []
    for s, count in enumerate(frame_counts):
        frames = _frames(count, s)
        requests += [
            CaptionRequest(
                frames, "the video shows people and hands", "video", f"n{s}"
            ),
            CaptionRequest(frames, "man cuts", "video", f"n{s}"),
        ]
    return requests


def test_shared_video_prefix_equals_separate_prompts_with_half_the_prefill(
    tiny_models,
):
    # Clips of unequal length: the shorter video prefixes are left-padded.
    requests = _node_requests((32, 8, 16))
    texts, work = {}, {}
    for share in (False, True):
        captioner = _sensitive(
            tiny_models["perception_lm"],
            batch_size=2,
            max_new_tokens=6,
            share_video_prefix=share,
        )
        texts[share], work[share] = captioner(requests), captioner.work
    assert all(isinstance(t, str) and t for t in texts[True])
    assert len(set(texts[True])) > 3  # the text depends on clip and prompt
    assert texts[True] == texts[False]  # greedy: the same text either way
    # One vision pass per clip instead of one per prompt.
    assert work[True].frames * 2 == work[False].frames == 2 * (32 + 8 + 16)
    assert work[True].prompt_tokens <= 0.6 * work[False].prompt_tokens
    assert work[True].generated_tokens == work[False].generated_tokens == 6 * 6


def test_prompts_carry_one_bos_with_a_tokenizer_that_adds_it(tiny_models):
    for name, kind in (("perception_lm", "video"), ("mllama", "image")):
        captioner = TransformersCaptioner(str(tiny_models[name]), device="cpu")
        captioner.ensure_setup()
        tokenizer = captioner.processor.tokenizer
        bos = tokenizer.bos_token_id
        assert tokenizer("a table")["input_ids"][0] == bos  # like Llama 3's
        request = CaptionRequest(_frames(2), "describe", kind)
        rendered = captioner._prompt(request)
        assert rendered.startswith(tokenizer.bos_token)  # the template writes it
        ids = captioner.encode([rendered], [request])["input_ids"][0].tolist()
        assert ids[0] == bos and ids.count(bos) == 1


class _SmallMemory(TransformersCaptioner):
    """Fails batches of more than ``fits`` rows as a GPU out of memory would."""

    fits = 2

    def _generate_units(self, units):
        import torch

        self.sizes.append(len(units))
        if len(units) > self.fits:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate")
        return super()._generate_units(units)


def test_out_of_memory_halves_the_batch_and_keeps_it_small(tiny_models):
    captioner = _SmallMemory(
        str(tiny_models["mllama"]),
        device="cpu",
        batch_size=8,
        max_new_tokens=4,
        engine="static",
    )
    captioner.sizes = []
    captioner.ensure_setup()
    requests = [CaptionRequest(_frames(1, s), "describe", "image") for s in range(6)]
    texts = captioner(requests)
    assert all(isinstance(t, str) and t for t in texts)
    assert captioner.sizes == [6, 3, 2, 2, 2]  # halved on failure, then kept
    reference = TransformersCaptioner(
        str(tiny_models["mllama"]), device="cpu", batch_size=1, max_new_tokens=4
    )
    reference.ensure_setup()
    assert reference(requests) == texts


def test_batches_hold_one_prompt_shortest_first():
    from action100m.models.captioners.batching import make_units, run_batches

    frames = _frames(1)
    prompts = ["a long caption prompt", "short", "a long caption prompt", "short"]
    requests = [
        CaptionRequest(frames, p, "video", f"n{i // 2}") for i, p in enumerate(prompts)
    ]
    requests.append(CaptionRequest(frames, "image prompt", "image"))
    seen = []

    def generate(units):
        seen.append([u.requests[0].prompt for u in units])
        return [[r.prompt.upper() for r in u.requests] for u in units]

    units = make_units(requests, share_clips=False)
    out = run_batches(units, generate, lambda unit: 8, lambda size: None, len(requests))
    assert out == [p.upper() for p in prompts] + ["IMAGE PROMPT"]
    assert seen == [["image prompt"], ["short"] * 2, ["a long caption prompt"] * 2]
    shared = make_units(requests, share_clips=True)
    assert [len(u.requests) for u in shared] == [1, 2, 2]  # the image, two clips
    mixed = make_units(requests, share_clips=False, by_prompt=False)
    assert [u.requests[0].prompt for u in mixed] == prompts + ["image prompt"]


def test_static_kv_cache_gives_the_dynamic_cache_greedy_text(tiny_models):
    requests = [
        CaptionRequest(_frames(1, s), "the image shows", "image") for s in range(3)
    ]
    texts = {}
    for cache in (None, "static"):
        captioner = _sensitive(
            tiny_models["mllama"],
            batch_size=4,
            max_new_tokens=5,
            cache_implementation=cache,
            engine="static",
        )
        texts[cache] = captioner(requests)
        assert captioner.describe()["cache_implementation"] == cache
    assert all(isinstance(t, str) and t for t in texts["static"])
    assert texts["static"] == texts[None]


def test_rows_that_fit_follow_free_memory_for_the_real_configs():
    from transformers import LlamaConfig

    from action100m.models.captioners.hf import rows_that_fit
    from benchmarks.gpu_captioners import PLM_TEXT

    # PerceptionLM-3B's language model: 28 layers, 8 KV heads of 128, MLP 8192.
    plm = LlamaConfig(**PLM_TEXT)
    node = {"element": 2, "prompt_tokens": 8230, "max_new_tokens": 1024, "cap": 16}
    # Per row: 112 KiB of KV per token x (2 x 8,230 + 1,024) + 270 MB of MLP.
    per_row = 114_688 * (2 * 8230 + 1024) + 8230 * 8192 * 2 * 2
    assert rows_that_fit(48 * 2**30, plm, shared=True, **node) == int(
        0.7 * 48 * 2**30 // per_row
    )
    assert rows_that_fit(48 * 2**30, plm, shared=True, **node) == 15
    assert rows_that_fit(48 * 2**30, plm, shared=False, **node) == 16  # the cap
    assert rows_that_fit(2 * 2**30, plm, shared=True, **node) == 1  # never 0
    more = rows_that_fit(80 * 2**30, plm, shared=True, **node)
    assert more == 16 and rows_that_fit(24 * 2**30, plm, shared=True, **node) == 7


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


def test_captioners_are_built_from_their_parameters():
    served = PLMParams(
        backend="openai", caption_prompt="c", action_prompt="a", jpeg_quality=70,
        backoff_s=0.1, max_concurrency=3,
    )  # fmt: skip
    captioner = make_captioner(served)
    assert (captioner.jpeg_quality, captioner.backoff_s) == (70, 0.1)
    assert captioner.max_concurrency == 3
    local = make_captioner(
        PLMParams(caption_prompt="c", action_prompt="a", batch_size=7)
    )
    assert isinstance(local, TransformersCaptioner)
    assert (local.batch_size, local.share_video_prefix) == (7, True)
    scheduling = {"backend", "num_gpus", "num_frames", "frame_size", "frame_aspect"}
    prompts = {"caption_prompt", "action_prompt", "prompt", "frame_short_side"}
    for params, model in ((served, captioner), (PLMParams(caption_prompt="c",
                          action_prompt="a"), local)):  # fmt: skip
        used = type(model).constructor_args()
        unused = set(type(params).model_fields) - used - scheduling - prompts
        # each setting reaches the model or belongs to the other backend
        other = OpenAICaptioner if model is local else TransformersCaptioner
        assert unused <= other.constructor_args()


def test_videos_in_flight_needs_captioners_that_take_several_videos():
    params = _captioning_params("http://127.0.0.1:9/v1", max_concurrency=4)
    assert (
        CaptioningParams(
            **params.model_dump() | {"videos_in_flight": 4}
        ).videos_in_flight
        == 4
    )
    mixed = params.model_dump() | {"videos_in_flight": 2}
    mixed["llama"]["backend"] = "transformers"  # the engine takes several videos
    assert CaptioningParams(**mixed).videos_in_flight == 2
    mixed["llama"]["engine"] = "static"
    with pytest.raises(ValueError, match="llama runs static batches"):
        CaptioningParams(**mixed)


def _run_caption_trees(folder, server_url: str, videos_in_flight: int) -> dict:
    """Stage 2's node over one-node trees of every cut video, saved in order."""
    from action100m.core.params import ExecutorParams
    from action100m.core.tree import Node, SegmentTree, make_node_id
    from action100m.datasets import PartitionLoaders
    from action100m.media.video import VideoSource
    from action100m.pipelines.captioning.nodes import caption_trees

    manifest = [_video(folder, p.stem) for p in sorted(folder.glob("*.mp4"))]
    trees = {}
    for video in manifest:
        uid, end = video["video_uid"], video["duration"]
        root = Node(make_node_id(uid, 0.0, end), None, 0, 0.0, end)
        trees[uid] = SegmentTree(uid, [root]).to_dict()
    params = _captioning_params(server_url, max_concurrency=16).model_copy(
        update={"videos_in_flight": videos_in_flight}
    )
    work = caption_trees(
        PartitionLoaders({uid: (lambda t=t: t) for uid, t in trees.items()}),
        manifest,
        [VideoSource(v["video_uid"], v["path"]) for v in manifest],
        params,
        ExecutorParams(),
    )
    return {uid: work[uid]() for uid in trees}  # as the dataset saves them


def test_served_captioning_keeps_several_videos_in_flight(cut_videos):
    folder, _ = cut_videos
    results = {}
    for in_flight in (1, 3):
        with FakeOpenAIServer() as server:
            server.default = "sleep:0.5"
            results[in_flight] = _run_caption_trees(folder, server.base_url, in_flight)
            peak = server.peak_in_flight
        # A one-node tree asks three questions; only other videos add to them.
        if in_flight == 1:
            assert peak <= 3
        else:
            assert peak > 3
    assert len(results[3]) == len(list(folder.glob("*.mp4"))) >= 3
    for uid, result in results[3].items():
        assert result["errors"] == [], uid
        (fields,) = result["captions"].values()
        assert set(fields) == {"plm_caption", "plm_action", "llama3_caption"}
        assert set(result) == set(results[1][uid])
