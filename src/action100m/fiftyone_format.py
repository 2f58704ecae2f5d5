"""Export trees as a FiftyOne dataset directory (``fiftyone.types.FiftyOneDataset``).

The directory holds ``metadata.json`` (the dataset's media type and field
schema) and ``samples.json`` (one video sample per tree). Every ``gpt`` field is
a sample-level ``TemporalDetections`` field (``gpt_summary_brief``, ...) with one
``TemporalDetection`` per annotated node: the field's text as ``label``, the
node's ``[first, last]`` frames (1-based, inclusive) as ``support``, and its
``node_id``, ``parent_id`` (null for the root), ``level`` and ``start``/``end``
seconds as attributes. Load it with::

    import fiftyone as fo
    dataset = fo.Dataset.from_dir(folder, dataset_type=fo.types.FiftyOneDataset)

Writing (``action100m.datasets.FiftyOneDatasetDir``) needs no FiftyOne; ids
are derived from the video and node ids, so the same trees give the same files.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from typing import Any

from action100m.schema import GPT_FIELDS
from action100m.tree import SegmentTree

FORMAT_VERSION = "1.0.0"  # oldest schema layout FiftyOne 1.x migrates from
_FIELDS = "fiftyone.core.fields."


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


def _detections_field(name: str) -> dict[str, Any]:
    attributes = [
        _field("id", "ObjectIdField", db_field="_id"),
        _field("tags", "ListField", subfield=_FIELDS + "StringField"),
        _field("label", "StringField"),
        _field("support", "FrameSupportField", subfield=_FIELDS + "IntField"),
        _field("confidence", "FloatField"),
        _field("node_id", "StringField"),
        _field("parent_id", "StringField"),
        _field("level", "IntField"),
        _field("start", "FloatField"),
        _field("end", "FloatField"),
    ]
    detections = _field(
        "detections",
        "ListField",
        embedded_doc_type="fiftyone.core.labels.TemporalDetection",
        subfield=_FIELDS + "EmbeddedDocumentField",
        fields=attributes,
    )
    return _field(
        name,
        "EmbeddedDocumentField",
        embedded_doc_type="fiftyone.core.labels.TemporalDetections",
        fields=[detections],
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
        _field("title", "StringField"),
    ]
    schema += [_detections_field(field_name(*f)) for f in GPT_FIELDS]
    return {
        "version": FORMAT_VERSION,
        "media_type": "video",
        "sample_fields": schema,
        "info": {"gpt_fields": [".".join(f) for f in GPT_FIELDS]},
    }


def video_sample(tree: SegmentTree, video: VideoFrames) -> dict[str, Any]:
    """One ``samples.json`` entry: the video and a detection per ``gpt`` field."""
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
        "title": (tree.metadata or {}).get("title"),
    }
    for group, key in GPT_FIELDS:
        name = field_name(group, key)
        detections = []
        for node in tree.nodes:
            if node.gpt is None:
                continue
            detections.append(
                {
                    "_id": object_id(uid, name, node.node_id),
                    "_cls": "TemporalDetection",
                    "tags": [],
                    "label": node.gpt[group][key],
                    "support": frame_support(node.start, node.end, video),
                    "confidence": None,
                    "node_id": node.node_id,
                    "parent_id": node.parent_id,
                    "level": int(node.level),
                    "start": float(node.start),
                    "end": float(node.end),
                }
            )
        sample[name] = {"_cls": "TemporalDetections", "detections": detections}
    return sample
