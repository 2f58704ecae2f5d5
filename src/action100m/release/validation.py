"""Checks of a whole release (``action100m validate``), one row group at a time."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from action100m.core.schema import schema_differences
from action100m.core.tree import SegmentTree
from action100m.release.shards import ReleaseSource, open_release


@dataclass
class ReleaseReport:
    """What :func:`check_release` found: violations and what was counted."""

    problems: list[str] = field(default_factory=list)
    videos: int = 0
    nodes: int = 0
    without_plm_caption: int = 0


def check_release(
    source: ReleaseSource,
    require_captions: bool = True,
    strict: bool = False,
    require_gpt: bool = True,
) -> ReleaseReport:
    """Schema differences of every file, then every tree's invariant violations.

    The rows are read a row group at a time; besides the violations only the
    uids seen so far are kept (to find a uid that appears twice).

    Args:
        source: A release file, folder or glob of shards, or a table.
        require_captions: Require the Stage 2/3 fields where the release has them.
        strict: Also require ``plm_caption`` on every node (see
            :meth:`~action100m.core.tree.SegmentTree.violations`) and finite,
            non-negative transcript times.
        require_gpt: With ``require_captions``, also require the Stage 3 fields.

    Returns:
        The violations (empty for a valid release) and the counts of videos,
        nodes and nodes without ``plm_caption``.
    """
    release = open_release(source)
    report = ReleaseReport()
    schemas = list(release.schemas())
    for name, schema in schemas:
        prefix = f"{name}: " if len(schemas) > 1 else ""
        report.problems += [prefix + p for p in schema_differences(schema)]
    if report.problems:
        return report
    seen: set[str] = set()
    for row in release.rows():
        report.videos += 1
        nodes = row.get("nodes") or []
        report.nodes += len(nodes)
        report.without_plm_caption += sum(n["plm_caption"] is None for n in nodes)
        uid = row["video_uid"]
        if uid is None:
            report.problems.append("a row has no video_uid")
            continue
        if uid in seen:
            report.problems.append(f"{uid}: video_uid appears twice")
        seen.add(uid)
        report.problems += SegmentTree.from_release_row(row).violations(
            require_captions, strict, require_gpt
        )
        if strict:
            report.problems += transcript_problems(uid, row.get("metadata") or {})
    return report


def table_violations(
    source: ReleaseSource,
    require_captions: bool = True,
    strict: bool = False,
    require_gpt: bool = True,
) -> list[str]:
    """Readable violations of :func:`check_release`; empty for a valid release."""
    return check_release(source, require_captions, strict, require_gpt).problems


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
