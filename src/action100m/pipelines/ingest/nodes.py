"""Ingest: discover videos, probe them, read their metadata sidecars."""

from __future__ import annotations

import logging
from typing import Any

from action100m.datasets.partitions import check_partition_id
from action100m.errors import VideoError, VideoFailure, record_failure
from action100m.metadata import read_sidecars
from action100m.params import IngestParams
from action100m.video import VideoSource, probe_video

logger = logging.getLogger(__name__)


def _probe_one(source: VideoSource, params: IngestParams) -> dict[str, Any]:
    try:
        check_partition_id(source.video_uid)
    except Exception as exc:
        raise VideoError(f"unsafe video_uid {source.video_uid!r}: {exc}") from exc
    info = probe_video(source)
    if info.duration < params.min_duration_s:
        raise VideoError(
            f"too short: {info.duration:.2f} s < {params.min_duration_s} s"
        )
    metadata = read_sidecars(
        source.sidecars, params.max_sidecar_bytes, source.storage_options
    )
    metadata.setdefault("duration", int(round(info.duration)))
    return {
        "video_uid": source.video_uid,
        "path": source.path,
        **info.to_dict(),
        "metadata": metadata,
    }


def probe_videos(
    videos: list[VideoSource], params: IngestParams
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Probe every video; unusable ones become error records.

    Args:
        videos: Video handles from the ``videos`` dataset.
        params: Ingest parameters.

    Returns:
        The manifest (one dict per usable video: uid, path, duration, fps, size,
        codec, release ``metadata``) and the error records of the others.
    """
    manifest: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
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
                "ingest", uid, lambda s=source: _probe_one(s, params), source.path
            )
        if isinstance(result, VideoFailure):
            errors.append(result.to_dict())
        else:
            manifest.append(result)
    logger.info("ingest: %d usable videos, %d errors", len(manifest), len(errors))
    return manifest, errors
