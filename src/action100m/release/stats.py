"""Corpus statistics of a release (``action100m stats``), in one streaming pass."""

from __future__ import annotations

from typing import Any

from action100m.core.schema import GPT_FIELDS
from action100m.core.tree import SegmentTree
from action100m.release.shards import ReleaseSource, release_rows

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


class CorpusStats:
    """The statistics of :func:`compute_stats`, accumulated one row at a time."""

    def __init__(self) -> None:
        self.videos = self.nodes = self.leaves = self.gpt_nodes = 0
        self.na = self.max_depth = 0
        self.hours = self.depth_sum = 0.0
        self.hist = dict.fromkeys((name for name, _, _ in DURATION_BINS), 0)
        self.words = {f: [0, 0] for f in WORD_FIELDS}

    def add(self, row: dict[str, Any], tree: SegmentTree | None = None) -> None:
        """Count one release row (``tree``: the row as a tree, if already built)."""
        tree = tree or SegmentTree.from_release_row(row)
        self.videos += 1
        self.nodes += len(tree.nodes)
        self.leaves += len(tree.leaves())
        depth = tree.max_depth() if tree.nodes else 0
        self.max_depth = max(self.max_depth, depth)
        self.depth_sum += depth
        self.hours += max((n.end for n in tree.nodes), default=0.0) / 3600
        for raw in row["nodes"] or []:
            duration = raw["end"] - raw["start"]
            for name, low, high in DURATION_BINS:
                if low <= duration < high:
                    self.hist[name] += 1
            if raw.get("gpt") is not None:
                self.gpt_nodes += 1
                action = raw["gpt"].get("action") or {}
                self.na += (action.get("brief") or "").strip() == "N/A"
            for field, text in _node_texts(raw).items():
                if text is not None:
                    self.words[field][0] += len(text.split())
                    self.words[field][1] += 1

    def result(self) -> dict[str, Any]:
        """See :func:`compute_stats`."""
        nodes, videos = self.nodes, self.videos
        return {
            "videos": videos,
            "nodes": nodes,
            "leaves": self.leaves,
            "gpt_nodes": self.gpt_nodes,
            "max_depth": self.max_depth,
            "video_hours": self.hours,
            "mean_tree_depth": self.depth_sum / videos if videos else None,
            "nodes_per_video": nodes / videos if videos else 0.0,
            "duration_hist": {
                k: (v / nodes if nodes else 0.0) for k, v in self.hist.items()
            },
            "mean_words": {
                f: (s / c if c else None) for f, (s, c) in self.words.items()
            },
            "na_rate": self.na / self.gpt_nodes if self.gpt_nodes else None,
            "paper": {
                "mean_words": PAPER_WORDS,
                "na_rate": PAPER_NA_RATE,
                "duration_hist": PAPER_DURATION_HIST,
            },
        }


def compute_stats(source: ReleaseSource) -> dict[str, Any]:
    """Counts, depth, duration histogram, mean words per field and N/A rate.

    One pass over the rows, a row group at a time (never the whole release as
    Python objects).

    Args:
        source: A release file, folder or glob of shards, or a table.

    Returns:
        ``videos``, ``nodes``, ``leaves``, ``gpt_nodes``, ``max_depth``,
        ``video_hours`` (each video's root end), ``mean_tree_depth``,
        ``nodes_per_video``, ``duration_hist`` (fractions of all nodes),
        ``mean_words`` (per field, over nodes where it is present; None if never)
        and ``na_rate`` (share of gpt nodes whose ``action.brief`` is "N/A").
    """
    stats = CorpusStats()
    for row in release_rows(source):
        stats.add(row)
    return stats.result()


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
