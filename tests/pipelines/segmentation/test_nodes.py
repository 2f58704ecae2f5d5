"""Stage 1 on real footage: shot purity, streaming windows, the V-JEPA 2 path."""

from __future__ import annotations

import numpy as np
import pytest

from action100m.core.params import EmbedderParams, SegmentationParams
from action100m.core.tree import SegmentTree
from action100m.datasets import VideoPartitionsDataset
from action100m.media.video import VideoInfo, VideoSource, probe_video, sample_frames
from action100m.models.embedders import (
    ColorHistogramEmbedder,
    VJEPA2Embedder,
    embed_frame_stream,
    make_embedder,
    window_starts,
)
from action100m.pipelines.segmentation.nodes import (
    build_tree,
    embed_video,
    stored_embeddings,
)

DEMO_PARAMS = SegmentationParams(
    frame_stride=4,
    embedder=EmbedderParams(
        backend="color_histogram",
        model_id=None,
        window=1,
        window_stride=1,
        batch_size=64,
    ),
)


def shot_purity(tree: SegmentTree, cuts: list[float], tolerance: float = 0.5) -> float:
    """(nodes - straddling) / (nodes - (k - 1)) for k shots."""
    straddling = sum(
        any(n.start < c - tolerance and n.end > c + tolerance for c in cuts)
        for n in tree.nodes
    )
    return (len(tree.nodes) - straddling) / (len(tree.nodes) - len(cuts))


def _video(folder, uid) -> dict:
    source = VideoSource(uid, str(folder / f"{uid}.mp4"))
    info: VideoInfo = probe_video(source)
    return {"video_uid": uid, "path": source.path, "metadata": {}, **info.to_dict()}


def _tree(folder, uid, params=DEMO_PARAMS, embedder=None) -> SegmentTree:
    video = _video(folder, uid)
    embedder = embedder or ColorHistogramEmbedder()
    embedder.ensure_setup()
    embeddings = embed_video(embedder, video, params)
    return SegmentTree.from_dict(build_tree(video, embeddings, params))


def test_shot_purity_on_footage_with_known_cuts(cut_videos):
    folder, cuts = cut_videos
    for uid, video_cuts in cuts.items():
        tree = _tree(folder, uid)
        assert tree.violations(require_captions=False) == []
        assert shot_purity(tree, video_cuts) >= 0.98, uid
        # Every cut is a segment boundary, within one sampled-frame gap.
        boundaries = np.array(sorted({n.start for n in tree.nodes}))
        for cut in video_cuts:
            assert np.abs(boundaries - cut).min() <= 0.17, (uid, cut)


@pytest.mark.parametrize("min_segment_s", [0.25, 1.0])
def test_configured_min_segment_s_bounds_every_leaf(cut_videos, min_segment_s):
    folder, _ = cut_videos
    params = DEMO_PARAMS.model_copy(deep=True)
    params.tree.min_segment_s = min_segment_s
    tree = _tree(folder, "cuts_b", params)  # build_tree checks the invariants
    leaves = tree.leaves()
    assert len(leaves) > 4
    assert min(n.duration for n in leaves) >= min_segment_s - 1e-3
    if min_segment_s < 0.5:  # finer than the release's 0.5 s, and still valid
        assert min(n.duration for n in leaves) < 0.5


def test_sampler_keeps_one_of_every_stride_frames_with_stream_times(cut_videos):
    folder, _ = cut_videos
    source = VideoSource("cuts_c", str(folder / "cuts_c.mp4"))
    batches = list(sample_frames(source, frame_stride=4, short_side=48, batch_size=7))
    times = np.concatenate([t for t, _ in batches])
    assert max(len(t) for t, _ in batches) == 7
    np.testing.assert_allclose(np.diff(times), 4 / 25, atol=1e-6)
    assert times[0] == 0.0
    assert batches[0][1].shape[1:] == (48, 64, 3)  # 4:3, short side 48
    assert len(times) == int(np.ceil(12.0 * 25 / 4))


@pytest.mark.parametrize(
    ("n", "window", "stride"), [(3, 8, 4), (8, 8, 4), (37, 8, 3), (50, 5, 5)]
)
def test_windows_cover_every_frame_and_average_per_frame(n, window, stride):
    rng = np.random.default_rng(n)
    frames = rng.integers(0, 255, size=(n, 12, 16, 3), dtype=np.uint8)
    embedder = ColorHistogramEmbedder(short_side=12)
    expected = embedder.preprocess(frames)
    embedder.window, embedder.window_stride = window, stride
    chunks = np.array_split(np.arange(n), [2, 9, 10, 30])
    batches = ((idx * 0.1, frames[idx]) for idx in chunks if len(idx))
    times, got = embed_frame_stream(embedder, batches, batch_size=3)
    np.testing.assert_allclose(times, np.arange(n) * 0.1)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    starts = window_starts(n, window, stride)
    covered = np.zeros(n, bool)
    for s in starts:
        covered[s : s + window] = True
    assert covered.all()


def test_tiny_vjepa2_runs_end_to_end(cut_videos, tiny_vjepa2):
    folder, cuts = cut_videos
    params = SegmentationParams(
        frame_stride=4,
        embedder=EmbedderParams(
            backend="vjepa2",
            model_id=str(tiny_vjepa2),
            device="cpu",
            window=8,
            window_stride=4,
            batch_size=2,
        ),
    )
    embedder = make_embedder(params.embedder)
    assert isinstance(embedder, VJEPA2Embedder) and embedder.processor is None
    video = _video(folder, "cuts_c")
    embedder.ensure_setup()  # weights and processor load here, not before
    assert embedder.short_side == int(32 * 256 / 224)
    embeddings = embed_video(embedder, video, params)
    n = len(embeddings["frame_times"])
    assert embeddings["embeddings"].shape == (n, 32)
    assert np.isfinite(embeddings["embeddings"]).all()
    tree = SegmentTree.from_dict(build_tree(video, embeddings, params))
    assert tree.violations(require_captions=False) == []
    assert tree.root.end == pytest.approx(video["duration"], abs=0.01)


def test_embedders_are_built_from_their_parameters():
    params = EmbedderParams(backend="color_histogram", window=3, window_stride=2)
    embedder = make_embedder(params)
    assert isinstance(embedder, ColorHistogramEmbedder)
    assert (embedder.window, embedder.window_stride) == (3, 2)
    with pytest.raises(ValueError, match="model_id is required"):
        make_embedder(EmbedderParams(backend="vjepa2", model_id=None))


@pytest.mark.parametrize(
    ("keep", "dtype"), [(True, "float16"), (True, "float32"), (False, "float16")]
)
def test_stored_embeddings_leave_the_tree_unchanged(cut_videos, tmp_path, keep, dtype):
    """Float16 on disk, or no embeddings at all: the tree built from float32."""
    folder, cuts = cut_videos
    params = DEMO_PARAMS.model_copy(
        update={"keep_embeddings": keep, "embeddings_dtype": dtype}
    )
    embedder = ColorHistogramEmbedder()
    embedder.ensure_setup()
    stored = VideoPartitionsDataset(path=str(tmp_path), format="npz")
    for uid in cuts:
        video = _video(folder, uid)
        embedded = embed_video(embedder, video, params)
        assert embedded["embeddings"].dtype == np.float32
        before = build_tree(video, embedded, params)  # in memory, in float32
        stored.save({uid: stored_embeddings(embedded, params)})
        loaded = stored.load()[uid]()
        assert build_tree(video, loaded, params) == before, uid
        if keep:
            assert loaded["embeddings"].dtype == np.dtype(dtype)
            assert loaded["embeddings"].shape == embedded["embeddings"].shape
        else:
            assert "embeddings" not in loaded
            assert set(loaded) == {"frame_times", "duration", "linkage"}
