"""Export trees as a FiftyOne dataset directory (``fiftyone.types.FiftyOneDataset``).

The directory holds ``metadata.json`` (the dataset's media type and field
schema) and ``samples.json`` (one video sample per tree), with every sample
field of the Action100M FiftyOne card:

- the video's metadata: ``title``, ``description``, ``full_video_url`` (the
  YouTube watch URL of the ``video_uid``, for 11-character YouTube ids),
  ``upload_date`` (a datetime, from the release's ``YYYYMMDD`` or an ISO date),
  ``view_count``, ``like_count``, ``full_video_duration`` (seconds, from the
  metadata's ``duration``), ``transcript`` (the ASR entries' text joined by
  spaces) and ``tree_depth`` (the deepest level; the root is level 0); each is
  null where the video has no such metadata;
- ``transcript_segments``: a ``TemporalDetections`` field with one detection per
  ASR entry, from its time to the next entry's (the last runs to the video end);
- one ``TemporalDetections`` field per ``gpt`` field (``gpt_summary_brief``, ...)
  with one ``TemporalDetection`` per annotated node: the field's text as
  ``label``, the node's ``[first, last]`` frames (1-based, inclusive) as
  ``support``, and its ``node_id``, ``parent_id`` (null for the root),
  ``level`` and ``start``/``end`` seconds as attributes. ``gpt_action_brief``
  leaves out the "N/A" (non-action) segments.

Load it with::

    import fiftyone as fo
    dataset = fo.Dataset.from_dir(folder, dataset_type=fo.types.FiftyOneDataset)

Writing (``action100m.datasets.FiftyOneDatasetDir``) needs no FiftyOne; ids
are derived from the video and node ids, so the same trees give the same files.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from action100m.core.schema import GPT_FIELDS
from action100m.core.tree import SegmentTree

FORMAT_VERSION = "1.0.0"  # oldest schema layout FiftyOne 1.x migrates from
_FIELDS = "fiftyone.core.fields."
NOT_AN_ACTION = "N/A"
TRANSCRIPT_SEGMENTS = "transcript_segments"
YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
# Sample fields from the video's metadata, in the card's order, with their types.
METADATA_SAMPLE_FIELDS = (
    ("title", "StringField"),
    ("description", "StringField"),
    ("full_video_url", "StringField"),
    ("upload_date", "DateTimeField"),
    ("view_count", "IntField"),
    ("like_count", "IntField"),
    ("full_video_duration", "FloatField"),
    ("transcript", "StringField"),
    ("tree_depth", "IntField"),
)


def field_name(group: str, key: str) -> str:
    """The sample field of one ``gpt`` field, e.g. ``gpt_action_brief``."""
    return f"gpt_{group}_{key}"


def object_id(*parts: str) -> dict[str, str]:
    """A stable 24-hex-digit ObjectId derived from ``parts``."""
    digest = hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:24]
    return {"$oid": digest}


@dataclass(frozen=True)
class VideoFrames:
    """What a sample needs to know of its video file."""

    filepath: str
    fps: float
    frame_count: int
    width: int | None = None
    height: int | None = None
    duration: float | None = None

    @classmethod
    def from_probe(cls, path: str, info: dict[str, Any]) -> VideoFrames:
        """From a local path or URL and its probed properties (a manifest row)."""
        fps, duration = float(info["fps"]), float(info["duration"])
        return cls(
            filepath=path if "://" in path else os.path.abspath(path),
            fps=fps,
            frame_count=int(info["frame_count"]) or max(1, round(duration * fps)),
            width=int(info["width"]),
            height=int(info["height"]),
            duration=duration,
        )


def frame_support(start: float, end: float, video: VideoFrames) -> list[int]:
    """``[first, last]`` 1-based frames covering ``start``–``end`` seconds."""
    total = max(1, video.frame_count)
    first = min(total, max(1, math.floor(start * video.fps + 1e-6) + 1))
    last = min(total, max(first, math.ceil(end * video.fps - 1e-6)))
    return [first, last]


def full_video_url(video_uid: str) -> str | None:
    """The YouTube watch URL of a YouTube video id; None for other names."""
    if YOUTUBE_ID.fullmatch(video_uid) is None:
        return None
    return f"https://www.youtube.com/watch?v={video_uid}"


def parse_upload_date(text: str | None) -> datetime | None:
    """An upload date as UTC: the release's ``YYYYMMDD`` or an ISO 8601 date.

    Returns:
        The datetime, or None for a missing or unreadable date.
    """
    text = (text or "").strip()
    try:
        if re.fullmatch(r"\d{8}", text):
            found = datetime.strptime(text, "%Y%m%d")
        else:
            found = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if found.tzinfo is None:
        return found.replace(tzinfo=UTC)
    return found.astimezone(UTC)


def _json_date(value: datetime | None) -> dict[str, str] | None:
    """A datetime in MongoDB extended JSON, as FiftyOne reads ``samples.json``."""
    if value is None:
        return None
    return {"$date": value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value:%f}"[:3] + "Z"}


def _words(text: Any) -> str:
    return " ".join(str(text or "").split())


def transcript_entries(
    metadata: dict[str, Any], video_end: float
) -> list[tuple[float, float, str]]:
    """``(start, end, text)`` of each ASR entry with a readable time, by time.

    An entry lasts until the next one starts; the last one until ``video_end``.
    """
    timed = []
    for entry in metadata.get("transcript") or []:
        try:
            start = float(entry["time"])
        except (TypeError, ValueError, KeyError):
            continue
        if math.isfinite(start):
            timed.append((max(0.0, start), _words(entry.get("text"))))
    timed.sort(key=lambda e: e[0])
    if not timed:
        return []
    ends = [t for t, _ in timed[1:]] + [max(video_end, timed[-1][0])]
    return [(t, end, text) for (t, text), end in zip(timed, ends, strict=True)]


def _field(name: str, ftype: str, **extra: Any) -> dict[str, Any]:
    spec = {
        "name": name,
        "ftype": _FIELDS + ftype,
        "embedded_doc_type": None,
        "subfield": None,
        "db_field": name,
    }
    spec.update(extra)
    return spec


def _detections_field(name: str, attributes: tuple[tuple[str, str], ...]) -> dict:
    fields = [
        _field("id", "ObjectIdField", db_field="_id"),
        _field("tags", "ListField", subfield=_FIELDS + "StringField"),
        _field("label", "StringField"),
        _field("support", "FrameSupportField", subfield=_FIELDS + "IntField"),
        _field("confidence", "FloatField"),
    ]
    fields += [_field(attr, ftype) for attr, ftype in attributes]
    detections = _field(
        "detections",
        "ListField",
        embedded_doc_type="fiftyone.core.labels.TemporalDetection",
        subfield=_FIELDS + "EmbeddedDocumentField",
        fields=fields,
    )
    return _field(
        name,
        "EmbeddedDocumentField",
        embedded_doc_type="fiftyone.core.labels.TemporalDetections",
        fields=[detections],
    )


_SPAN = (("start", "FloatField"), ("end", "FloatField"))
_NODE = (
    ("node_id", "StringField"),
    ("parent_id", "StringField"),
    ("level", "IntField"),
    *_SPAN,
)


def dataset_metadata() -> dict[str, Any]:
    """``metadata.json``: a video dataset and its field schema."""
    schema = [
        _field("id", "ObjectIdField", db_field="_id"),
        _field("filepath", "StringField"),
        _field("tags", "ListField", subfield=_FIELDS + "StringField"),
        _field(
            "metadata",
            "EmbeddedDocumentField",
            embedded_doc_type="fiftyone.core.metadata.VideoMetadata",
        ),
        _field("created_at", "DateTimeField"),
        _field("last_modified_at", "DateTimeField"),
        _field("_media_type", "StringField"),
        _field("_dataset_id", "ObjectIdField"),
        _field("video_uid", "StringField"),
    ]
    schema += [_field(name, ftype) for name, ftype in METADATA_SAMPLE_FIELDS]
    schema.append(_detections_field(TRANSCRIPT_SEGMENTS, _SPAN))
    schema += [_detections_field(field_name(*f), _NODE) for f in GPT_FIELDS]
    return {
        "version": FORMAT_VERSION,
        "media_type": "video",
        "sample_fields": schema,
        "info": {"gpt_fields": [".".join(f) for f in GPT_FIELDS]},
    }


def _detection(
    oid: dict[str, str],
    label: str,
    start: float,
    end: float,
    video: VideoFrames,
    **attributes: Any,
) -> dict[str, Any]:
    return {
        "_id": oid,
        "_cls": "TemporalDetection",
        "tags": [],
        "label": label,
        "support": frame_support(start, end, video),
        "confidence": None,
        **attributes,
        "start": float(start),
        "end": float(end),
    }


def _metadata_fields(tree: SegmentTree) -> dict[str, Any]:
    meta = tree.metadata or {}
    texts = [text for _, _, text in transcript_entries(meta, 0.0) if text]
    duration = meta.get("duration")
    counts = {k: meta.get(k) for k in ("view_count", "like_count")}
    return {
        "title": meta.get("title"),
        "description": meta.get("description"),
        "full_video_url": full_video_url(tree.video_uid),
        "upload_date": _json_date(parse_upload_date(meta.get("upload_date"))),
        **{k: None if v is None else int(v) for k, v in counts.items()},
        "full_video_duration": None if duration is None else float(duration),
        "transcript": " ".join(texts) if texts else None,
        "tree_depth": tree.max_depth() if tree.nodes else None,
    }


def _transcript_segments(tree: SegmentTree, video: VideoFrames) -> dict | None:
    meta = tree.metadata or {}
    video_end = video.duration or (tree.root.end if tree.nodes else 0.0)
    entries = transcript_entries(meta, float(video_end))
    if not entries:
        return None
    uid = tree.video_uid
    detections = [
        _detection(object_id(uid, TRANSCRIPT_SEGMENTS, str(i)), text, t, e, video)
        for i, (t, e, text) in enumerate(entries)
    ]
    return {"_cls": "TemporalDetections", "detections": detections}


def _gpt_detections(
    tree: SegmentTree, video: VideoFrames, group: str, key: str
) -> dict[str, Any]:
    name = field_name(group, key)
    detections = []
    for node in tree.nodes:
        if node.gpt is None:
            continue
        label = node.gpt[group][key]
        if name == "gpt_action_brief" and _words(label) == NOT_AN_ACTION:
            continue
        detections.append(
            _detection(
                object_id(tree.video_uid, name, node.node_id),
                label,
                node.start,
                node.end,
                video,
                node_id=node.node_id,
                parent_id=node.parent_id,
                level=int(node.level),
            )
        )
    return {"_cls": "TemporalDetections", "detections": detections}


def video_sample(tree: SegmentTree, video: VideoFrames) -> dict[str, Any]:
    """One ``samples.json`` entry: the video, its metadata and its detections."""
    uid = tree.video_uid
    sample: dict[str, Any] = {
        "_id": object_id(uid),
        "filepath": video.filepath,
        "tags": [],
        "_media_type": "video",
        "metadata": {
            "_cls": "VideoMetadata",
            "frame_width": video.width,
            "frame_height": video.height,
            "frame_rate": video.fps,
            "total_frame_count": video.frame_count,
            "duration": video.duration,
        },
        "video_uid": uid,
        **_metadata_fields(tree),
        TRANSCRIPT_SEGMENTS: _transcript_segments(tree, video),
    }
    for group, key in GPT_FIELDS:
        sample[field_name(group, key)] = _gpt_detections(tree, video, group, key)
    return sample
