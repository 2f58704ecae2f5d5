"""Video metadata sidecars: ``<uid>.json`` and ``.srt`` / ``.vtt`` transcripts."""

from __future__ import annotations

import math
import re
from typing import Any

import fsspec
from pydantic import BaseModel, ConfigDict, field_validator

from action100m.core.errors import VideoError
from action100m.media.jsontext import JSONObjectError, parse_json_object

_TIMING = re.compile(
    r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})\s*-->\s*(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})"
)


class TranscriptEntry(BaseModel):
    """One transcript line: its start time (seconds, as text) and words."""

    time: str
    text: str

    @field_validator("time", mode="before")
    @classmethod
    def _time_as_text(cls, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError("time must be a number or a string of seconds")
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ValueError(f"transcript time {value!r} is not a finite number")
        if seconds < 0:
            raise ValueError(f"negative transcript time {seconds}")
        return str(value) if isinstance(value, str) else format(seconds, "g")


class VideoMetadata(BaseModel):
    """The release's ``metadata`` struct, as read from a sidecar."""

    model_config = ConfigDict(extra="ignore")

    title: str | None = None
    description: str | None = None
    view_count: int | None = None
    like_count: int | None = None
    duration: int | None = None
    upload_date: str | None = None
    transcript: list[TranscriptEntry] | None = None


def _read_text(path: str, max_bytes: int, storage_options: dict[str, Any]) -> str:
    with fsspec.open(path, "rb", **storage_options) as handle:
        raw = handle.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise VideoError(f"sidecar {path} is larger than {max_bytes} bytes")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise VideoError(f"sidecar {path} is not UTF-8 text ({exc})") from exc


def _seconds(h: str | None, m: str, s: str, frac: str) -> float:
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(frac.ljust(3, "0")) / 1000


def parse_subtitles(text: str) -> list[dict[str, str]]:
    """Parse SRT or WebVTT cues into release transcript entries.

    Args:
        text: The subtitle file's content.

    Returns:
        ``[{time, text}]`` sorted by time (seconds as text), one entry per cue.

    Raises:
        VideoError: A cue whose timing line cannot be read.
    """
    entries = []
    timed = False
    blocks = re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip())
    for block in blocks:
        lines = [line.strip() for line in block.split("\n") if line.strip()]
        timing_at = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if timing_at is None:
            continue  # WEBVTT header, NOTE or STYLE blocks, bare cue numbers
        timed = True
        match = _TIMING.search(lines[timing_at])
        if match is None:
            raise VideoError(f"unreadable subtitle timing line {lines[timing_at]!r}")
        start = _seconds(*match.groups()[:4])
        words = " ".join(re.sub(r"<[^>]+>", "", s) for s in lines[timing_at + 1 :])
        if words:
            entries.append((start, words))
    content = re.sub(r"^\ufeff?WEBVTT[^\n]*", "", text.strip()).strip()
    if content and not timed:
        raise VideoError("no subtitle cue (no 'start --> end' timing line)")
    entries.sort(key=lambda e: e[0])
    return [{"time": format(round(t, 3), "g"), "text": w} for t, w in entries]


def read_sidecars(
    sidecars: tuple[str, ...],
    max_bytes: int,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Read a video's sidecars into the release ``metadata`` fields.

    Args:
        sidecars: Paths of ``.json``, ``.srt`` and ``.vtt`` files of one video.
        max_bytes: Larger files are rejected.
        storage_options: fsspec options opening them (credentials of a bucket).

    Returns:
        The metadata fields found (missing ones are absent).

    Raises:
        VideoError: Unreadable, invalid or mistyped sidecars.
    """
    found: dict[str, Any] = {}
    subtitles = None
    for path in sorted(sidecars):
        text = _read_text(path, max_bytes, storage_options or {})
        if path.lower().endswith(".json"):
            try:
                meta = parse_json_object(text, VideoMetadata)
            except JSONObjectError as exc:
                what = "is not valid JSON" if exc.not_json else "is invalid"
                raise VideoError(f"sidecar {path} {what}: {exc}") from exc
            found = meta.model_dump(exclude_none=True)
        else:
            try:
                subtitles = parse_subtitles(text)
            except VideoError as exc:
                raise VideoError(f"subtitles {path}: {exc}") from exc
    if "transcript" in found:
        found["transcript"].sort(key=lambda e: float(e["time"]))
    elif subtitles is not None:
        found["transcript"] = subtitles
    return found
