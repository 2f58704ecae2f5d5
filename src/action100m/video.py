"""Video probing and streaming frame sampling with PyAV (bundled FFmpeg)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import av
import fsspec
import numpy as np
from fsspec.utils import get_protocol

from action100m.errors import VideoError

# Decoded frames must reach this share of the claimed duration, else the stream is
# reported as truncated.
MIN_DECODED_SHARE = 0.9


@dataclass(frozen=True)
class VideoSource:
    """A video file and its optional sidecars, addressed by path or fsspec URL."""

    video_uid: str
    path: str
    sidecars: tuple[str, ...] = field(default_factory=tuple)

    @contextlib.contextmanager
    def open_container(self) -> Iterator[av.container.InputContainer]:
        """Open the file with PyAV (local paths directly, other URLs via fsspec)."""
        if get_protocol(self.path) in ("file", "local"):
            with av.open(
                self.path.removeprefix("file://"), metadata_errors="ignore"
            ) as c:
                yield c
        else:
            with fsspec.open(self.path, "rb") as handle, av.open(handle) as c:
                yield c


@dataclass(frozen=True)
class VideoInfo:
    """Probed stream properties."""

    duration: float
    fps: float
    width: int
    height: int
    codec: str
    frame_count: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _av_error(exc: Exception) -> VideoError:
    return VideoError(f"not a readable video ({type(exc).__name__}: {exc})")


def probe_video(source: VideoSource) -> VideoInfo:
    """Read duration, fps, size and codec, and decode the first frame.

    Args:
        source: The video to probe.

    Returns:
        The stream's properties.

    Raises:
        VideoError: Empty, unreadable, audio-only or frameless files.
    """
    fs, path = fsspec.core.url_to_fs(source.path)
    if fs.size(path) == 0:
        raise VideoError("empty file (0 bytes)")
    try:
        with source.open_container() as container:
            if not container.streams.video:
                kinds = sorted({s.type for s in container.streams}) or ["no"]
                raise VideoError(f"no video stream (found {', '.join(kinds)} streams)")
            stream = container.streams.video[0]
            first = next(container.decode(stream), None)
            if first is None:
                raise VideoError("video stream has no decodable frames")
            fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            else:
                duration = (stream.frames or 1) / fps
            return VideoInfo(
                duration=duration,
                fps=fps,
                width=int(first.width),
                height=int(first.height),
                codec=stream.codec_context.name,
                frame_count=int(stream.frames or round(duration * fps)),
            )
    except VideoError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, StopIteration) as exc:
        raise _av_error(exc) from exc


def even_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """Scale (width, height) so the shorter side is ``short_side`` (even sizes)."""
    if not short_side:
        return width, height
    scale = short_side / min(width, height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def sample_frames(
    source: VideoSource,
    frame_stride: int = 4,
    short_side: int | None = None,
    batch_size: int = 64,
    expected_duration: float | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream one of every ``frame_stride`` decoded frames as RGB batches.

    Frames are decoded in order and never held beyond one batch. Timestamps come
    from each frame's presentation time, relative to the stream start, so variable
    frame rates are handled.

    Args:
        source: The video.
        frame_stride: Keep frames 0, s, 2s, ... of the decoded sequence.
        short_side: Resize so the shorter side has this many pixels (None: keep).
        batch_size: Frames per yielded batch.
        expected_duration: The probed duration; decoding that stops well short of
            it is reported as a truncated stream.

    Yields:
        ``(times, frames)``: float64 seconds ``(B,)`` and uint8 ``(B, H, W, 3)``.

    Raises:
        VideoError: Undecodable or truncated streams.
    """
    times: list[float] = []
    frames: list[np.ndarray] = []
    last_time = None
    try:
        with source.open_container() as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            size = None
            origin = None
            for index, frame in enumerate(container.decode(stream)):
                if index % frame_stride:
                    continue
                if size is None:
                    size = even_size(frame.width, frame.height, short_side)
                t = (
                    frame.time
                    if frame.time is not None
                    else index / float(stream.average_rate or 25)
                )
                origin = t if origin is None else origin
                last_time = t - origin
                times.append(last_time)
                frames.append(
                    frame.to_ndarray(width=size[0], height=size[1], format="rgb24")
                )
                if len(frames) == batch_size:
                    yield np.asarray(times), np.stack(frames)
                    times, frames = [], []
    except av.error.FFmpegError as exc:
        at = "start" if last_time is None else f"{last_time:.2f} s"
        raise VideoError(f"decoding failed at {at}: {exc}") from exc
    if frames:
        yield np.asarray(times), np.stack(frames)
    if last_time is None:
        raise VideoError("video stream has no decodable frames")
    if expected_duration and expected_duration > 2.0:
        reached = last_time / expected_duration
        if reached < MIN_DECODED_SHARE:
            raise VideoError(
                f"truncated stream: frames stop at {last_time:.2f} s of a claimed "
                f"{expected_duration:.2f} s"
            )
