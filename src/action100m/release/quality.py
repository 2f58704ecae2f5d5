"""Quality metrics of a run: structure, lengths vs the paper, LLM behaviour, cuts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from action100m.core.tree import SegmentTree
from action100m.release.shards import ReleaseSource, release_rows
from action100m.release.stats import (
    PAPER_DURATION_HIST,
    PAPER_NA_RATE,
    PAPER_WORDS,
    CorpusStats,
)


def boundary_f1(
    predicted: Iterable[float], truth: Iterable[float], tolerance: float = 0.5
) -> dict[str, float]:
    """Precision, recall and F1 of boundaries matched one-to-one within a tolerance."""
    predicted, truth = sorted(predicted), sorted(truth)
    unmatched = list(truth)
    hits = 0
    for p in predicted:
        best = min(unmatched, key=lambda t: abs(t - p), default=None)
        if best is not None and abs(best - p) <= tolerance:
            unmatched.remove(best)
            hits += 1
    precision = hits / len(predicted) if predicted else 1.0
    recall = hits / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def top_boundaries(tree: SegmentTree, count: int) -> list[float]:
    """The split points of the first ``count`` internal nodes, breadth first.

    The top of a Ward tree splits where frames differ most, so its first k-1
    splits are the tree's best guess of a k-segment partition.
    """
    kids = tree.children()
    splits = [kids[n.node_id][0].end for n in tree.nodes if n.node_id in kids]
    return splits[:count]


def cut_metrics(tree: SegmentTree, cuts: list[float], tolerance: float = 0.5):
    """Boundary F1 of the top of the tree, and recall of every tree boundary."""
    top = boundary_f1(top_boundaries(tree, len(cuts)), cuts, tolerance)
    every = {n.start for n in tree.nodes if n.start > 0}
    recall_any = boundary_f1(every, cuts, tolerance)["recall"]
    return {"boundary_f1": top["f1"], "boundary_recall_any_level": recall_any}


def refine_metrics(annotation_parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """JSON validity, retries and Self-Refine change rates from the per-node rounds."""
    requests = first_try = retries = landed_early = unannotated = 0
    changed: dict[int, list[bool]] = {}
    for part in annotation_parts:
        for error in part.get("errors", []):
            if error.get("field") == "gpt":
                landed_early += error.get("landed_round") is not None
                unannotated += error.get("landed_round") is None
        for rounds in part.get("rounds", {}).values():
            for index, entry in enumerate(rounds):
                requests += 1
                first_try += entry["attempts"] == 1
                retries += entry["attempts"] - 1
                if index:
                    before = rounds[index - 1]["annotation"]
                    changed.setdefault(entry["round"], []).append(
                        entry["annotation"] != before
                    )
    metrics: dict[str, Any] = {
        "llm_requests": requests,
        "llm_first_attempt_valid_rate": first_try / requests if requests else None,
        "llm_retries_per_request": retries / requests if requests else None,
        # a later round failed after its retries; the node kept an earlier answer
        "llm_nodes_landed_before_last_round": landed_early,
        "llm_nodes_without_annotation": unannotated,
    }
    for round_number, flags in sorted(changed.items()):
        metrics[f"refine_change_rate_round{round_number}"] = sum(flags) / len(flags)
    return metrics


class ReleaseMetrics:
    """Structure and text statistics of release rows, one row at a time."""

    def __init__(self, min_leaf_s: float = 0.5) -> None:
        self.stats = CorpusStats()
        self.valid = 0
        self.min_leaf_s = min_leaf_s

    def add(self, row: dict[str, Any], tree: SegmentTree | None = None) -> None:
        """Count one release row (``tree``: the row as a tree, if already built)."""
        tree = tree or SegmentTree.from_release_row(row)
        self.stats.add(row, tree)
        self.valid += not tree.violations(
            require_captions=True, min_leaf_s=self.min_leaf_s
        )

    def result(self) -> dict[str, Any]:
        """See :func:`release_metrics`."""
        stats = self.stats.result()
        videos = stats["videos"]
        metrics: dict[str, Any] = {
            "videos": videos,
            "nodes": stats["nodes"],
            "nodes_per_video": stats["nodes_per_video"],
            "max_depth": stats["max_depth"],
            "invariant_pass_rate": self.valid / videos if videos else None,
            "na_rate": stats["na_rate"],
            "na_rate_paper": PAPER_NA_RATE,
        }
        for name, share in stats["duration_hist"].items():
            key = name.replace("-", "_to_").replace("+", "_plus")
            metrics[f"duration_share_{key}_s"] = share
            metrics[f"duration_share_{key}_s_paper"] = PAPER_DURATION_HIST[name]
        for field, mean in stats["mean_words"].items():
            metrics[f"words_{field}"] = mean
            if field in PAPER_WORDS:
                metrics[f"words_{field}_paper"] = PAPER_WORDS[field]
        return metrics


def release_metrics(source: ReleaseSource, min_leaf_s: float = 0.5) -> dict[str, Any]:
    """Structure and text statistics of a release, with gaps to the paper.

    ``min_leaf_s`` is the shortest leaf the invariants allow (the run's
    ``segmentation.tree.min_segment_s``; the release's 0.5 s by default).
    """
    metrics = ReleaseMetrics(min_leaf_s)
    for row in release_rows(source):
        metrics.add(row)
    return metrics.result()
