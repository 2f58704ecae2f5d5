"""Corpus statistics of a release-schema table (``action100m stats``)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from action100m.schema import GPT_FIELDS
from action100m.tree import SegmentTree

DURATION_BINS = (
    ("0-3", 0.0, 3.0),
    ("3-10", 3.0, 10.0),
    ("10-60", 10.0, 60.0),
    ("60+", 60.0, float("inf")),
)
# The paper's corpus statistics: mean words per field, N/A share, node durations.
PAPER_WORDS = {
    "action_brief": 3.2,
    "summary_brief": 19.2,
    "action_detailed": 27.8,
    "summary_detailed": 95.3,
}
PAPER_NA_RATE = 0.0323
PAPER_DURATION_HIST = {"0-3": 0.64, "3-10": 0.238, "10-60": 0.102, "60+": 0.02}
WORD_FIELDS = (
    "plm_caption",
    "llama3_caption",
    *(f"{group}_{key}" for group, key in GPT_FIELDS),
)


def _node_texts(node: dict[str, Any]) -> dict[str, str | None]:
    gpt = node.get("gpt") or {}
    texts = {f: node.get(f) for f in ("plm_caption", "llama3_caption")}
    for group, key in GPT_FIELDS:
        texts[f"{group}_{key}"] = (gpt.get(group) or {}).get(key)
    return texts


def compute_stats(table: pa.Table) -> dict[str, Any]:
    """Counts, depth, duration histogram, mean words per field and N/A rate.

    Args:
        table: A release-schema table.

    Returns:
        ``videos``, ``nodes``, ``leaves``, ``gpt_nodes``, ``max_depth``,
        ``nodes_per_video``, ``duration_hist`` (fractions of all nodes),
        ``mean_words`` (per field, over nodes where it is present; None if never)
        and ``na_rate`` (share of gpt nodes whose ``action.brief`` is "N/A").
    """
    videos = nodes = leaves = gpt_nodes = na = max_depth = 0
    hist = dict.fromkeys((name for name, _, _ in DURATION_BINS), 0)
    words = {f: [0, 0] for f in WORD_FIELDS}
    for row in table.to_pylist():
        tree = SegmentTree.from_release_row(row)
        videos += 1
        nodes += len(tree.nodes)
        leaves += len(tree.leaves())
        max_depth = max(max_depth, tree.max_depth() if tree.nodes else 0)
        for raw in row["nodes"] or []:
            duration = raw["end"] - raw["start"]
            for name, low, high in DURATION_BINS:
                if low <= duration < high:
                    hist[name] += 1
            if raw.get("gpt") is not None:
                gpt_nodes += 1
                action = raw["gpt"].get("action") or {}
                na += (action.get("brief") or "").strip() == "N/A"
            for field, text in _node_texts(raw).items():
                if text is not None:
                    words[field][0] += len(text.split())
                    words[field][1] += 1
    return {
        "videos": videos,
        "nodes": nodes,
        "leaves": leaves,
        "gpt_nodes": gpt_nodes,
        "max_depth": max_depth,
        "nodes_per_video": nodes / videos if videos else 0.0,
        "duration_hist": {k: (v / nodes if nodes else 0.0) for k, v in hist.items()},
        "mean_words": {f: (s / c if c else None) for f, (s, c) in words.items()},
        "na_rate": na / gpt_nodes if gpt_nodes else None,
        "paper": {
            "mean_words": PAPER_WORDS,
            "na_rate": PAPER_NA_RATE,
            "duration_hist": PAPER_DURATION_HIST,
        },
    }


def format_stats(stats: dict[str, Any]) -> str:
    """A readable table of :func:`compute_stats`' result, next to the paper's values."""
    paper = stats["paper"]
    lines = [f"{'':<28}{'this file':>12}{'paper':>10}"]
    for key in ("videos", "nodes", "leaves", "gpt_nodes", "max_depth"):
        lines.append(f"{key:<28}{stats[key]:>12}")
    lines.append(f"{'nodes_per_video':<28}{stats['nodes_per_video']:>12.1f}")
    for name, share in stats["duration_hist"].items():
        lines.append(
            f"{'duration ' + name + ' s':<28}{share:>12.1%}"
            f"{paper['duration_hist'][name]:>10.1%}"
        )
    for field, mean in stats["mean_words"].items():
        shown = "-" if mean is None else f"{mean:.1f}"
        ref = paper["mean_words"].get(field)
        lines.append(
            f"{'words ' + field:<28}{shown:>12}{'' if ref is None else ref:>10}"
        )
    na = stats["na_rate"]
    na_text = "-" if na is None else f"{na:.2%}"
    lines.append(f"{'na_rate':<28}{na_text:>12}{paper['na_rate']:>10.2%}")
    return "\n".join(lines)
