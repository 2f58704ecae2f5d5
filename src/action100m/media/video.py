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

from action100m.core.errors import VideoError

# Decoded frames must reach this share of the claimed duration, else the stream is
# reported as truncated.
MIN_DECODED_SHARE = 0.9


@dataclass(frozen=True)
class VideoSource:
    """A video file and its optional sidecars, addressed by path or fsspec URL.

    ``storage_options`` (the catalog's credentials and ``fs_args`` of the video
    folder, e.g. ``key``, ``secret``, ``client_kwargs``) open every one of its
    files; they are neither printed nor compared.
    """

    video_uid: str
    path: str
    sidecars: tuple[str, ...] = field(default_factory=tuple)
    storage_options: dict[str, Any] = field(
        default_factory=dict, repr=False, compare=False
    )

    def open(self):
        """An fsspec file object of the video."""
        return fsspec.open(self.path, "rb", **self.storage_options)

    def size(self) -> int:
        """The video file's size in bytes."""
        fs, path = fsspec.core.url_to_fs(self.path, **self.storage_options)
        return fs.size(path)

    @contextlib.contextmanager
    def open_container(self) -> Iterator[av.container.InputContainer]:
        """Open the file with PyAV (local paths directly, other URLs via fsspec)."""
        if get_protocol(self.path) in ("file", "local"):
            with av.open(
                self.path.removeprefix("file://"), metadata_errors="ignore"
            ) as c:
                yield c
        else:
            with self.open() as handle, av.open(handle) as c:
                yield c


def manifest_sources(
    video_manifest: list[dict[str, Any]], videos: list[VideoSource]
) -> dict[str, VideoSource]:
    """Each manifest row's video, opened with the storage options it was listed with.

    Args:
        video_manifest: Rows of ingest's manifest (``video_uid``, ``path``).
        videos: The ``videos`` dataset's listing (carries the credentials).

    Returns:
        ``video_uid -> VideoSource``; a path no longer listed opens without options.
    """
    options = {v.path: v.storage_options for v in videos}
    return {
        row["video_uid"]: VideoSource(
            row["video_uid"], row["path"], storage_options=options.get(row["path"], {})
        )
        for row in video_manifest
    }


@dataclass(frozen=True)
class VideoInfo:
    """Probed stream properties."""

    duration: float
    fps: float
    width: int
    height: int
    codec: str
    frame_count: int
    rotation: int = 0  # degrees counter-clockwise applied for display

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
    if source.size() == 0:
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
            width, height = display_size(first)
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            else:
                duration = (stream.frames or 1) / fps
            return VideoInfo(
                duration=duration,
                fps=fps,
                width=width,
                height=height,
                codec=stream.codec_context.name,
                frame_count=int(stream.frames or round(duration * fps)),
                rotation=90 * quarter_turns(first),
            )
    except VideoError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, StopIteration) as exc:
        raise _av_error(exc) from exc


def quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns the stream's display matrix asks for."""
    try:
        degrees = frame.rotation or 0
    except (AttributeError, ValueError):
        return 0
    return round(degrees / 90) % 4


def display_size(frame: av.VideoFrame) -> tuple[int, int]:
    """``(width, height)`` as the video is meant to be shown (after rotation)."""
    if quarter_turns(frame) % 2:
        return int(frame.height), int(frame.width)
    return int(frame.width), int(frame.height)


def to_rgb(frame: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
    """The frame upright, as uint8 RGB of display size ``(width, height)``."""
    turns = quarter_turns(frame)
    if not turns:
        return frame.to_ndarray(width=size[0], height=size[1], format="rgb24")
    stored = (size[1], size[0]) if turns % 2 else size
    array = frame.to_ndarray(width=stored[0], height=stored[1], format="rgb24")
    return np.ascontiguousarray(np.rot90(array, turns))


def even_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """Scale (width, height) so the shorter side is ``short_side`` (even sizes)."""
    if not short_side:
        return width, height
    scale = short_side / min(width, height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def decoded_frames(source: VideoSource) -> Iterator[tuple[int, float, av.VideoFrame]]:
    """Every decoded frame in order, with its index and time (s) from stream start.

    Times are presentation times, so variable frame rates are handled.

    Raises:
        VideoError: Undecodable streams or no frames at all.
    """
    last_time = None
    try:
        with source.open_container() as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            fallback_rate = float(stream.average_rate or 25)
            origin = None
            for index, frame in enumerate(container.decode(stream)):
                t = frame.time if frame.time is not None else index / fallback_rate
                origin = t if origin is None else origin
                last_time = t - origin
                yield index, last_time, frame
    except av.error.FFmpegError as exc:
        at = "start" if last_time is None else f"{last_time:.2f} s"
        raise VideoError(f"decoding failed at {at}: {exc}") from exc
    if last_time is None:
        raise VideoError("video stream has no decodable frames")


def check_complete(last_time: float | None, expected_duration: float | None) -> None:
    """Raise if decoding stopped well short of the probed duration."""
    if last_time is None or not expected_duration or expected_duration <= 2.0:
        return
    if last_time / expected_duration < MIN_DECODED_SHARE:
        raise VideoError(
            f"truncated stream: frames stop at {last_time:.2f} s of a claimed "
            f"{expected_duration:.2f} s"
        )


def sample_frames(
    source: VideoSource,
    frame_stride: int = 4,
    short_side: int | None = None,
    batch_size: int = 64,
    expected_duration: float | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream one of every ``frame_stride`` decoded frames as RGB batches.

    Frames are decoded in order and never held beyond one batch.

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
    size = None
    last_time = None
    for index, t, frame in decoded_frames(source):
        last_time = t
        if index % frame_stride:
            continue
        size = size or even_size(*display_size(frame), short_side)
        times.append(t)
        frames.append(to_rgb(frame, size))
        if len(frames) == batch_size:
            yield np.asarray(times), np.stack(frames)
            times, frames = [], []
    if frames:
        yield np.asarray(times), np.stack(frames)
    check_complete(last_time, expected_duration)


@dataclass(frozen=True)
class FrameRequest:
    """Frames wanted at given times, converted to one size.

    Attributes:
        key: The caller's id for the request (e.g. a node id).
        times: Times (s) wanted; each gets the decoded frame nearest to it.
        size: Exact ``(width, height)``; None keeps the aspect ratio.
        short_side: With ``size`` None, scale so the shorter side is this long
            (None: native size).
    """

    key: Any
    times: tuple[float, ...]
    size: tuple[int, int] | None = None
    short_side: int | None = None

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        return self.size or even_size(width, height, self.short_side)


def frames_at_times(
    source: VideoSource,
    requests: list[FrameRequest],
    expected_duration: float | None = None,
) -> Iterator[tuple[Any, list[np.ndarray]]]:
    """Serve many frame requests from one streaming decode pass.

    Every wanted time gets the decoded frame nearest to it (ties go to the
    earlier frame). A request is yielded as soon as its last frame is decoded,
    so only the requests still open hold frames; a frame shared by several
    requests of the same size is converted once.

    Args:
        source: The video.
        requests: What to deliver.
        expected_duration: Probed duration, to report truncated streams.

    Yields:
        ``(key, frames)``: uint8 ``(H, W, 3)`` arrays in the order of ``times``.
    """
    targets = sorted(
        (t, r, slot)
        for r, req in enumerate(requests)
        for slot, t in enumerate(req.times)
    )
    filled: list[list[np.ndarray | None]] = [[None] * len(q.times) for q in requests]
    missing = [len(q.times) for q in requests]
    for r, req in enumerate(requests):
        if not missing[r]:
            yield req.key, []
    converted: dict[tuple[int, tuple[int, int]], np.ndarray] = {}
    ready: list[int] = []

    def assign(entry: tuple[int, float, av.VideoFrame], target: tuple) -> None:
        index, _, frame = entry
        _, r, slot = target
        size = requests[r].output_size(*display_size(frame))
        array = converted.get((index, size))
        if array is None:
            array = to_rgb(frame, size)
            converted[(index, size)] = array
        filled[r][slot] = array
        missing[r] -= 1
        if missing[r] == 0:
            ready.append(r)

    def release() -> Iterator[tuple[Any, list[np.ndarray]]]:
        while ready:
            r = ready.pop(0)
            frames, filled[r] = filled[r], []
            yield requests[r].key, frames

    pos = 0
    prev = None
    last_time = None
    for entry in decoded_frames(source):
        _, t, _ = entry
        last_time = t
        while pos < len(targets) and targets[pos][0] < t:
            wanted = targets[pos][0]
            use_prev = prev is not None and wanted - prev[1] <= t - wanted
            assign(prev if use_prev else entry, targets[pos])
            pos += 1
        yield from release()
        # Only the previous and current frames can still be chosen.
        converted = {k: v for k, v in converted.items() if k[0] == entry[0]}
        prev = entry
    for target in targets[pos:]:
        assign(prev, target)
    yield from release()
    check_complete(last_time, expected_duration)
