"""Checks of a whole release-schema file (``action100m validate``)."""

from __future__ import annotations

import math

import pyarrow as pa

from action100m.core.schema import schema_differences
from action100m.core.tree import SegmentTree


def table_violations(
    table: pa.Table,
    require_captions: bool = True,
    strict: bool = False,
    require_gpt: bool = True,
) -> list[str]:
    """Schema differences plus every tree's invariant violations.

    Args:
        table: The table read from a release-schema parquet.
        require_captions: Require the Stage 2/3 fields where the release has them.
        strict: Also require ``plm_caption`` on every node (see
            :meth:`~action100m.core.tree.SegmentTree.violations`) and finite,
            non-negative transcript times.
        require_gpt: With ``require_captions``, also require the Stage 3 fields.

    Returns:
        Readable violations; empty when the file is a valid release file.
    """
    problems = schema_differences(table.schema)
    if problems:
        return problems
    seen: set[str] = set()
    for row in table.to_pylist():
        uid = row["video_uid"]
        if uid is None:
            problems.append("a row has no video_uid")
            continue
        if uid in seen:
            problems.append(f"{uid}: video_uid appears twice")
        seen.add(uid)
        problems += SegmentTree.from_release_row(row).violations(
            require_captions, strict, require_gpt
        )
        if strict:
            problems += transcript_problems(uid, row.get("metadata") or {})
    return problems


def transcript_problems(uid: str, metadata: dict) -> list[str]:
    """Transcript times that are not finite, non-negative numbers of seconds."""
    problems = []
    for entry in metadata.get("transcript") or []:
        time = (entry or {}).get("time")
        try:
            ok = math.isfinite(float(time)) and float(time) >= 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            problems.append(f"{uid}: transcript time {time!r} is not a finite time")
    return problems
