"""The continuous-batching engine on the tiny real models: same text as static
batches, rows refilled as answers end, drains on small buckets."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from action100m.core.params import CaptioningParams, LlamaParams, PLMParams
from action100m.models.captioners import CaptionRequest, TransformersCaptioner
from action100m.models.captioners.engine import buckets
from action100m.models.work import slot_occupancy
from action100m.pipelines.captioning.nodes import caption_video
from tests.pipelines.captioning.test_captioners import (
    _frames,
    _node_requests,
    _sensitive,
)
from tests.pipelines.segmentation.test_nodes import _tree, _video


class _Forced(TransformersCaptioner):
    """Every answer ends (EOS) after the number of tokens its prompt names."""

    def question_limits(self, request):
        length = int(request.prompt.split()[-1])
        return {"max_new_tokens": 64, "min_new_tokens": length, "stop_at": length}


def _seeing(name: str, folder, **settings) -> TransformersCaptioner:
    """``_sensitive``, and Mllama's cross-attention gates opened (they start at 0,
    which would hide the image from the text)."""
    import torch

    captioner = _sensitive(folder, **settings)
    with torch.no_grad():
        for key, parameter in captioner.model.named_parameters():
            if "gate" in key:
                parameter.fill_(1.0)
    return captioner


def _forced(folder, slots: int) -> _Forced:
    captioner = _Forced(str(folder), device="cpu", batch_size=slots)
    captioner.ensure_setup()
    return captioner


def test_engine_answers_equal_static_batches(tiny_models):
    plm_requests = _node_requests((32, 8, 16, 4, 12))
    llama_requests = [
        CaptionRequest(_frames(1, s), "the image shows", "image") for s in range(5)
    ]
    for name, requests in (
        ("perception_lm", plm_requests),
        ("mllama", llama_requests),
    ):
        texts = {}
        for engine in ("static", "continuous"):
            captioner = _seeing(
                name,
                tiny_models[name],
                batch_size=2,  # fewer rows than requests: the engine refills
                max_new_tokens=7,
                share_video_prefix=True,
                engine=engine,
            )
            texts[engine] = captioner(requests)
            captioner.teardown()
        assert all(isinstance(t, str) for t in texts["continuous"])
        assert len(set(texts["continuous"])) > 2  # text depends on the input
        assert texts["continuous"] == texts["static"], name


def test_engine_captions_a_video_as_the_static_path(tiny_models, cut_videos):
    folder, _ = cut_videos
    video, tree = _video(folder, "cuts_b"), _tree(folder, "cuts_b")
    params = CaptioningParams(
        plm=PLMParams(
            model_id=str(tiny_models["perception_lm"]),
            num_frames=8,
            frame_size=56,
            max_new_tokens=6,
            caption_prompt="describe the video",
            action_prompt="what happens",
        ),
        llama=LlamaParams(
            model_id=str(tiny_models["mllama"]),
            max_new_tokens=6,
            frame_short_side=32,
            prompt="the image shows",
        ),
    )
    captions = {}
    for engine in ("static", "continuous"):
        plm, llama = (
            _seeing(
                name, tiny_models[name], batch_size=4, max_new_tokens=6, engine=engine,
                share_video_prefix=True,
            )
            for name in ("perception_lm", "mllama")
        )  # fmt: skip
        result = caption_video(tree, video, plm, llama, params)
        assert result["errors"] == []
        captions[engine] = result["captions"]
        for model in (plm, llama):
            model.teardown()
    assert len(tree.nodes) >= 5
    assert captions["continuous"] == captions["static"]


def test_engine_refills_rows_and_keeps_them_busy(tiny_models):
    lengths = [3, 40, 5, 7, 31, 2, 18, 9, 25, 4, 12, 6]
    requests = [
        CaptionRequest(_frames(1, s), f"describe {n}", "image")
        for s, n in enumerate(lengths)
    ]
    captioner = _forced(tiny_models["mllama"], slots=4)
    texts = captioner(requests)
    work = captioner.work.take()
    captioner.teardown()
    assert all(isinstance(t, str) for t in texts)
    # each answer: exactly its length, then EOS
    assert work["generated_tokens"] == sum(lengths) + len(lengths)
    assert slot_occupancy(work) >= 0.9
    # the steps are bounded by the tokens over the rows plus the longest tail
    assert work["decode_steps"] <= sum(lengths) / 4 + max(lengths) + len(lengths)
    assert work["vision_frames"] == len(lengths)


def test_static_batches_wait_for_their_longest_answer(tiny_models):
    from benchmarks.gpu_cost import ForcedLengths

    lengths = [3, 40, 5, 7, 31, 2, 18, 9]

    class Static(TransformersCaptioner):
        def _settings(self, rows):
            targets = [int(r.prompt.split()[-1]) for r in rows]
            eos = self.processor.tokenizer.eos_token_id
            return super()._settings(rows) | {
                "logits_processor": [ForcedLengths(targets, eos)]
            }

    captioner = Static(
        str(tiny_models["mllama"]), device="cpu", batch_size=4, max_new_tokens=64,
        engine="static", batch_by_prompt=False,
    )  # fmt: skip
    captioner.ensure_setup()
    captioner(
        [
            CaptionRequest(_frames(1, s), f"describe {n}", "image")
            for s, n in enumerate(lengths)
        ]
    )
    work = captioner.work.take()
    # two batches of 4 rows run to their longest answers (40 and 31 tokens)
    assert work["decode_steps"] == 40 + 31
    assert work["slot_steps"] == 4 * (40 + 31)
    assert slot_occupancy(work) < 0.5


def test_a_lone_long_answer_drains_on_the_smallest_bucket(tiny_models):
    assert buckets(6) == [1, 2, 4, 6] and buckets(1) == [1]
    captioner = _forced(tiny_models["mllama"], slots=4)
    lengths = [2, 2, 2, 30]  # the long one lands in the last row
    texts = captioner(
        [
            CaptionRequest(_frames(1, s), f"describe {n}", "image")
            for s, n in enumerate(lengths)
        ]
    )
    engine = captioner.slot_engine
    assert all(isinstance(t, str) for t in texts)
    # after the short answers end, the long row moves to row 0 and runs alone
    assert engine.bucket_steps[1] >= 25
    assert engine.bucket_steps[4] <= 3
    captioner.teardown()


def test_a_longer_prompt_grows_the_rows(tiny_models):
    captioner = _sensitive(
        tiny_models["perception_lm"], batch_size=2, max_new_tokens=4,
        share_video_prefix=True,
    )  # fmt: skip
    reference = _sensitive(
        tiny_models["perception_lm"], batch_size=2, max_new_tokens=4,
        share_video_prefix=True, engine="static",
    )  # fmt: skip
    short = _node_requests((4,))
    captioner(short)
    first = captioner.slot_engine.capacity
    long = _node_requests((96, 8))  # 96 frames: a prefix longer than the rows
    assert captioner(long) == reference(long)
    assert captioner.slot_engine.capacity > first
    captioner.teardown()


def test_videos_in_flight_share_one_engine(tiny_models):
    captioner = _seeing("mllama", tiny_models["mllama"], batch_size=3, max_new_tokens=5)
    reference = _seeing(
        "mllama", tiny_models["mllama"], batch_size=3, max_new_tokens=5,
        engine="static",
    )  # fmt: skip
    videos = [
        [CaptionRequest(_frames(1, 10 * v + s), "the image shows", "image")
         for s in range(4)]
        for v in range(3)
    ]  # fmt: skip
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(captioner, videos))
    assert answers == [reference(batch) for batch in videos]
    captioner.teardown()


@pytest.mark.parametrize("engine", ["continuous", "static"])
def test_both_engines_count_prefill_and_vision(tiny_models, engine):
    captioner = _sensitive(
        tiny_models["perception_lm"], batch_size=2, max_new_tokens=3,
        share_video_prefix=True, engine=engine,
    )  # fmt: skip
    captioner(_node_requests((8, 16)))
    work = captioner.work.take()
    captioner.teardown()
    assert work["vision_frames"] == 8 + 16  # one vision pass per clip
    assert work["prefill_tokens"] >= work["prompt_tokens"] > 0
    assert work["decode_steps"] > 0


def test_a_failed_video_hands_over_what_it_spent(tiny_models, tmp_path):
    from action100m.core.errors import VideoFailure
    from action100m.core.tree import Node, SegmentTree, make_node_id
    from action100m.media.video import VideoSource
    from action100m.models.work import RUN_WORK, collect_work
    from action100m.pipelines.captioning.nodes import CaptioningWorker

    params = CaptioningParams(
        plm=PLMParams(model_id=str(tiny_models["perception_lm"]), device="cpu"),
        llama=LlamaParams(model_id=str(tiny_models["mllama"]), device="cpu"),
    )
    worker = CaptioningWorker(params)
    worker._setup()
    # Work the video spent before its file broke (requests already answered).
    worker.llama([CaptionRequest(_frames(1), "the image shows", "image")])
    spent = worker.llama.work.as_dict()
    uid = "gone"
    root = Node(make_node_id(uid, 0.0, 2.0), None, 0, 0.0, 2.0)
    video = {"video_uid": uid, "path": str(tmp_path / "gone.mp4"), "duration": 2.0}
    result = worker(
        (SegmentTree(uid, [root]).to_dict(), video, VideoSource(uid, video["path"]))
    )
    worker.teardown()
    assert isinstance(result, VideoFailure)
    assert result.work["llama"] == spent and spent["calls"] == 1
    RUN_WORK.reset()
    assert isinstance(collect_work(result, 2.0), VideoFailure)
    assert RUN_WORK.metrics()["work.llama.calls"] == 1  # counted in the totals
    assert worker.llama.work.as_dict()["calls"] == 0  # not left for the next video


def test_a_static_captioner_answers_a_single_submit(tiny_models):
    captioner = TransformersCaptioner(
        str(tiny_models["mllama"]), device="cpu", max_new_tokens=3, engine="static"
    )
    captioner.ensure_setup()
    request = CaptionRequest(_frames(1), "the image shows", "image")
    assert not captioner.streams
    assert captioner.submit(request).result() == captioner([request])[0]
