"""Ingest: discover videos, probe them, read their metadata sidecars."""

from __future__ import annotations

import logging
from typing import Any

from action100m.core.errors import VideoError, VideoFailure, record_failure
from action100m.core.params import IngestParams
from action100m.datasets.partitions import check_partition_id, partition_name
from action100m.media.metadata import read_sidecars
from action100m.media.video import VideoSource, probe_video

logger = logging.getLogger(__name__)


def _readable(record: dict[str, Any]) -> dict[str, Any]:
    """The record with file names that are not UTF-8 shown with U+FFFD."""
    return {
        key: value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        if isinstance(value, str)
        else value
        for key, value in record.items()
    }


def _check_name(video_uid: str) -> None:
    try:
        check_partition_id(video_uid)
        video_uid.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise VideoError(f"video_uid {video_uid!r} is not valid UTF-8") from exc
    except Exception as exc:
        raise VideoError(f"unsafe video_uid {video_uid!r}: {exc}") from exc


def _check_links(source: VideoSource, outside: dict[str, str]) -> None:
    for path in (source.path, *source.sidecars):
        if path in outside:
            raise VideoError(
                f"{path} is a link to {outside[path]}, outside the videos folder "
                "(set ingest.allow_external_links=true to follow such links)"
            )


def _probe_one(
    source: VideoSource, params: IngestParams, outside: dict[str, str]
) -> dict[str, Any]:
    _check_name(source.video_uid)
    if not params.allow_external_links:
        _check_links(source, outside)
    info = probe_video(source)
    if info.duration < params.min_duration_s:
        raise VideoError(
            f"too short: {info.duration:.2f} s < {params.min_duration_s} s"
        )
    metadata = read_sidecars(
        source.sidecars, params.max_sidecar_bytes, source.storage_options
    )
    metadata.setdefault("duration", int(round(info.duration)))
    row = {
        "video_uid": source.video_uid,
        "path": source.path,
        **info.to_dict(),
        "metadata": metadata,
    }
    if partition_name(source.video_uid) != source.video_uid:
        row["partition_name"] = partition_name(source.video_uid)  # a long name
    return row


def probe_videos(
    videos: list[VideoSource], params: IngestParams
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Probe every video; unusable ones become error records.

    Args:
        videos: Video handles from the ``videos`` dataset (its ``skipped`` files
            and links ``outside`` the folder, when it lists them).
        params: Ingest parameters.

    Returns:
        The manifest (one dict per usable video: uid, path, duration, fps, size,
        codec, release ``metadata``) and the error records of the others and of
        every skipped file.
    """
    manifest: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = [
        _readable(VideoFailure(s["name"], "ingest", s["reason"], s["path"]).to_dict())
        for s in getattr(videos, "skipped", ())
    ]
    outside = getattr(videos, "outside", {})
    first_path: dict[str, str] = {}
    for source in videos:
        uid = source.video_uid
        if uid in first_path:
            result: Any = VideoFailure(
                uid,
                "ingest",
                f"duplicate video_uid: {first_path[uid]} has the same name",
                source.path,
            )
        else:
            first_path[uid] = source.path
            result = record_failure(
                "ingest",
                uid,
                lambda s=source: _probe_one(s, params, outside),
                source.path,
            )
        if isinstance(result, VideoFailure):
            errors.append(_readable(result.to_dict()))
        else:
            manifest.append(result)
    logger.info("ingest: %d usable videos, %d errors", len(manifest), len(errors))
    return manifest, errors
