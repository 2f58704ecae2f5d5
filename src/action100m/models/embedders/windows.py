"""Streaming sliding-window embedding of a video's sampled frames."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from action100m.models.embedders.base import Embedder


def window_starts(n_frames: int, window: int, stride: int) -> list[int]:
    """Start indices of the windows that cover ``n_frames`` sampled frames.

    Regular starts ``0, stride, ...`` while a full window fits; one last window
    aligned to the end covers any tail; fewer frames than a window give one
    (padded) window at 0.
    """
    if n_frames <= window:
        return [0]
    starts = list(range(0, n_frames - window + 1, stride))
    if starts[-1] + window < n_frames:
        starts.append(n_frames - window)
    return starts


class _Accumulator:
    """Per-frame sums and counts of window outputs, grown on demand."""

    def __init__(self) -> None:
        self.sums: np.ndarray | None = None
        self.counts = np.zeros(0, dtype=np.int64)

    def add(self, first: int, last: int, vector: np.ndarray) -> None:
        if self.sums is None:
            self.sums = np.zeros((1024, vector.shape[-1]), dtype=np.float64)
            self.counts = np.zeros(1024, dtype=np.int64)
        if last > len(self.counts):
            size = max(last, 2 * len(self.counts))
            self.sums = np.resize(self.sums, (size, self.sums.shape[1]))
            self.sums[len(self.counts) :] = 0
            grown = np.zeros(size, dtype=np.int64)
            grown[: len(self.counts)] = self.counts
            self.counts = grown
        self.sums[first:last] += vector
        self.counts[first:last] += 1

    def mean(self, n_frames: int) -> np.ndarray:
        if self.sums is None:
            raise ValueError("no window was embedded")
        counts = self.counts[:n_frames]
        if (counts == 0).any():
            missing = int(np.flatnonzero(counts == 0)[0])
            raise ValueError(f"sampled frame {missing} is covered by no window")
        return (self.sums[:n_frames] / counts[:, None]).astype(np.float32)


class _HeldFrames:
    """The preprocessed frames that windows still to run need, and those windows.

    Frames arrive in order; a window start is queued once all its frames have
    arrived, and frames before the first start still needed are let go.
    """

    def __init__(self, window: int, stride: int) -> None:
        self.window, self.stride = window, stride
        self.frames: list = []  # frames from index `offset` on
        self.offset = 0
        self.queued: list[int] = []  # complete windows not yet run
        self.next_start = 0  # the first start not yet queued

    @property
    def known(self) -> int:
        """Frames that have arrived so far."""
        return self.offset + len(self.frames)

    def extend(self, frames: list) -> None:
        self.frames.extend(frames)
        while self.next_start + self.window <= self.known:
            self.queued.append(self.next_start)
            self.next_start += self.stride

    def take(self, count: int) -> list[int]:
        starts, self.queued = self.queued[:count], self.queued[count:]
        return starts

    def windows(self, starts: list[int]) -> list[list]:
        """The frames of each window (the last frame repeated past the end)."""
        windows = []
        for start in starts:
            frames = self.frames[
                start - self.offset : start - self.offset + self.window
            ]
            windows.append(frames + [frames[-1]] * (self.window - len(frames)))
        return windows

    def release(self) -> None:
        """Let go of frames no queued window needs (keeping the last full window:
        the end-aligned tail window may need it)."""
        first = self.queued[0] if self.queued else self.next_start
        keep_from = min(first, self.known - self.window)
        if keep_from > self.offset:
            del self.frames[: keep_from - self.offset]
            self.offset = keep_from


def _embed_windows(
    embedder: Embedder,
    held: _HeldFrames,
    starts: list[int],
    n_known: int,
    acc: _Accumulator,
) -> None:
    """Run one batch of windows and spread each time step over its frames."""
    if not starts:
        return
    out = np.asarray(embedder(embedder.stack(held.windows(starts))), dtype=np.float32)
    per_step = max(1, held.window // out.shape[1])
    for start, steps in zip(starts, out, strict=True):
        for j, vector in enumerate(steps):
            first = start + j * per_step
            last = min(first + per_step, n_known)
            if first < last:
                acc.add(first, last, vector)


def embed_frame_stream(
    embedder: Embedder,
    batches: Iterable[tuple[np.ndarray, Any]],
    batch_size: int = 4,
    preprocessed: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Embed a stream of sampled frames with overlapping windows.

    Each window's time steps are spread over the frames they stand for; a frame's
    embedding is the mean over all windows that cover it. Only the frames of
    windows still to run are held in memory.

    Args:
        embedder: The (set-up) embedder; its ``window``/``window_stride`` apply.
        batches: ``(times, frames)`` batches from
            :func:`~action100m.media.video.sample_frames`.
        batch_size: Windows per embedder call.
        preprocessed: The batches hold ``embedder.preprocess`` output already
            (e.g. done ahead in another thread), not decoded frames.

    Returns:
        ``(times, embeddings)``: float64 ``(N,)`` and float32 ``(N, D)``.
    """
    held = _HeldFrames(embedder.window, embedder.window_stride)
    acc = _Accumulator()
    times: list[np.ndarray] = []
    for batch_times, frames in batches:
        times.append(np.asarray(batch_times, dtype=np.float64))
        held.extend(frames if preprocessed else embedder.preprocess(frames))
        while len(held.queued) >= batch_size:
            _embed_windows(embedder, held, held.take(batch_size), held.known, acc)
        held.release()

    all_times = np.concatenate(times) if times else np.zeros(0)
    n_frames = len(all_times)
    if n_frames == 0:
        raise ValueError("no frames to embed")
    issued = range(0, held.next_start, held.stride)
    tail = [
        s for s in window_starts(n_frames, held.window, held.stride) if s not in issued
    ]
    held.queued += tail
    while held.queued:
        _embed_windows(embedder, held, held.take(batch_size), n_frames, acc)
    return all_times, acc.mean(n_frames)
