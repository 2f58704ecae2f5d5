"""Work counters and the prefetching thread, on real footage and the embedder."""

from __future__ import annotations

import threading

import pytest

from action100m.core.params import EmbedderParams, SegmentationParams
from action100m.media.prefetch import prefetch
from action100m.media.video import VideoSource
from action100m.models.embedders import ColorHistogramEmbedder
from action100m.models.work import COUNTERS, RUN_WORK, WorkCounter, collecting_work
from action100m.pipelines.segmentation.nodes import EmbeddingWorker, embed_video


def _params(prefetch_batches: int) -> SegmentationParams:
    return SegmentationParams(
        prefetch=prefetch_batches,
        embedder=EmbedderParams(
            backend="color_histogram", model_id=None, window=1, window_stride=1
        ),
    )


def test_prefetch_keeps_order_runs_ahead_and_passes_errors_on():
    produced = []

    def numbers():
        for i in range(5):
            produced.append((i, threading.current_thread().name))
            yield i

    assert list(prefetch(numbers(), depth=2)) == [0, 1, 2, 3, 4]
    assert {name for _, name in produced} == {"prefetch"}
    assert list(prefetch(iter(range(3)), depth=0)) == [0, 1, 2]

    def broken():
        yield 1
        raise ValueError("truncated stream")

    got = []
    with pytest.raises(ValueError, match="truncated stream"):
        for item in prefetch(broken()):
            got.append(item)
    assert got == [1]
    early = prefetch(iter(range(1000)), depth=2)
    assert next(early) == 0
    early.close()  # stops the thread without reading the rest


def test_prefetched_embeddings_equal_inline_ones(cut_videos):
    folder, _ = cut_videos
    video = {
        "video_uid": "cuts_a",
        "path": str(folder / "cuts_a.mp4"),
        "duration": 13.0,
    }
    inline = embed_video(ColorHistogramEmbedder(), video, _params(0))
    ahead = embed_video(ColorHistogramEmbedder(), video, _params(3))
    assert (inline["frame_times"] == ahead["frame_times"]).all()
    assert (inline["embeddings"] == ahead["embeddings"]).all()


def test_embedding_work_reaches_the_run_totals(cut_videos):
    folder, _ = cut_videos
    manifest = [
        {"video_uid": uid, "path": str(folder / f"{uid}.mp4"), "duration": seconds}
        for uid, seconds in (("cuts_a", 13.0), ("cuts_c", 12.0))
    ]
    worker = EmbeddingWorker(_params(2))
    RUN_WORK.reset()
    results = collecting_work(
        {
            v["video_uid"]: (
                lambda v=v: worker((v, VideoSource(v["video_uid"], v["path"])))
            )
            for v in manifest
        },
        manifest,
    )
    sampled = 0
    for run in results.values():
        result = run()
        assert "work" not in result  # counted, not saved with the embeddings
        sampled += len(result["frame_times"])
    metrics = RUN_WORK.metrics()
    assert metrics["work.embedder.frames"] == sampled  # one frame in four, each once
    assert metrics["work.embedder.calls"] >= 2
    assert metrics["work.embedder.frames_per_video_hour"] == pytest.approx(
        sampled / (25.0 / 3600)
    )
    assert "work.embedder.prompt_tokens" in metrics


def test_counts_without_video_time_use_the_run_video_hours():
    RUN_WORK.reset()
    llm = WorkCounter()
    llm.add_usage({"prompt_tokens": 900, "completion_tokens": 100})
    llm.add_usage({"prompt_tokens": 100, "completion_tokens": None})
    RUN_WORK.record("llm", llm.take())  # a reannotated tree: no manifest duration
    metrics = RUN_WORK.metrics(video_hours=0.5)
    assert metrics["work.llm.calls"] == 2
    assert metrics["work.llm.prompt_tokens_per_video_hour"] == 2000
    assert metrics["work.llm.generated_tokens"] == 100
    counter = WorkCounter(calls=3, frames=5)
    assert counter.take() == {name: 0 for name in COUNTERS} | {"calls": 3, "frames": 5}
    assert counter.as_dict()["calls"] == 0


def test_slot_occupancy_is_tokens_per_paid_row_step():
    RUN_WORK.reset()
    RUN_WORK.record("plm", {"slot_steps": 200, "busy_tokens": 150, "decode_steps": 9})
    RUN_WORK.record("llama", {"decode_steps": 4, "drain_steps": 4})
    metrics = RUN_WORK.metrics(video_hours=1.0)
    assert metrics["work.plm.slot_occupancy"] == 0.75
    assert "work.llama.slot_occupancy" not in metrics  # nothing waited: no figure
