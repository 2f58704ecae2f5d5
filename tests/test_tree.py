"""The segment tree type: construction, invariants, release round trip."""

from __future__ import annotations

import copy

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from action100m.core.clustering import temporal_ward_linkage
from action100m.core.schema import RELEASE_SCHEMA
from action100m.core.tree import SegmentTree, make_node_id
from action100m.release.validation import table_violations


def _tree_from_blocks(lengths, seconds_per_frame=0.16, seed=0) -> SegmentTree:
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(10 * i, 0.1, (n, 4)) for i, n in enumerate(lengths)])
    times = np.arange(len(x)) * seconds_per_frame
    return SegmentTree.from_merge_tree(
        "vid", temporal_ward_linkage(x), times, len(x) * seconds_per_frame
    )


def test_boundaries_are_midpoints_snapped_to_the_ends():
    tree = _tree_from_blocks([10, 10])
    root, left, right = tree.nodes[:3]
    assert (root.start, root.end) == (0.0, pytest.approx(3.2))
    # Blocks meet between frames 9 (1.44 s) and 10 (1.60 s).
    assert left.end == right.start == pytest.approx(1.52)
    assert tree.violations(require_captions=False) == []


def test_split_only_when_both_children_reach_min_duration():
    tree = _tree_from_blocks([40, 2, 40], seconds_per_frame=0.1)
    durations = [n.duration for n in tree.leaves()]
    assert min(durations) >= 0.5 - 1e-6
    assert tree.violations(require_captions=False) == []
    # The 0.2 s block is never a node of its own.
    assert not any(abs(n.duration - 0.2) < 0.05 for n in tree.nodes)


def test_levels_ids_and_breadth_first_order():
    tree = _tree_from_blocks([8, 12, 9, 15])
    levels = [n.level for n in tree.nodes]
    assert levels == sorted(levels)
    assert len({n.node_id for n in tree.nodes}) == len(tree.nodes)
    again = _tree_from_blocks([8, 12, 9, 15])
    assert [n.node_id for n in again.nodes] == [n.node_id for n in tree.nodes]
    node = tree.nodes[1]
    assert node.node_id == make_node_id("vid", node.start, node.end)


def test_single_frame_gives_a_root_only_tree():
    tree = SegmentTree.from_merge_tree("one", np.zeros((0, 4)), [0.0], 0.8)
    assert len(tree.nodes) == 1 and tree.root.end == pytest.approx(0.8)


def test_release_sample_round_trips_identically(release_sample):
    table = pq.read_table(release_sample)
    assert table.schema.equals(RELEASE_SCHEMA, check_metadata=False)
    rows = [SegmentTree.from_release_row(r).to_release_row() for r in table.to_pylist()]
    again = pa.Table.from_pylist(rows, schema=RELEASE_SCHEMA)
    assert again.schema.equals(table.schema, check_metadata=False)
    assert again.equals(table.cast(RELEASE_SCHEMA))


def test_release_sample_is_valid(release_sample):
    table = pq.read_table(release_sample)
    assert table_violations(table) == []
    # Three released nodes have no plm_caption: only --strict rejects them.
    assert len(table_violations(table, strict=True)) == 3


# ------------------------------------------------------------- broken trees
def _sample_row(release_sample) -> dict:
    return pq.read_table(release_sample).slice(0, 1).to_pylist()[0]


def _first_internal(row):
    parents = {n["parent_id"] for n in row["nodes"]}
    return next(i for i, n in enumerate(row["nodes"]) if n["node_id"] in parents)


def _mutations():
    def three_children(row):
        nodes = row["nodes"]
        leaf = next(n for n in reversed(nodes))
        extra = dict(leaf, node_id="extra-child")
        nodes.append(extra)

    def gap(row):
        row["nodes"][2]["start"] += 0.5

    def wrong_level(row):
        row["nodes"][3]["level"] += 1

    def short_leaf(row):
        nodes = row["nodes"]
        parents = {n["parent_id"] for n in nodes}
        leaf = next(n for n in nodes if n["node_id"] not in parents)
        siblings = [n for n in nodes if n["parent_id"] == leaf["parent_id"]]
        other = next(n for n in siblings if n is not leaf)
        if other["start"] >= leaf["end"]:
            leaf["end"] = other["start"] = leaf["start"] + 0.2
        else:
            leaf["start"] = other["end"] = leaf["end"] - 0.2

    def two_roots(row):
        row["nodes"][1]["parent_id"] = None

    def duplicate_ids(row):
        row["nodes"][4]["node_id"] = row["nodes"][3]["node_id"]

    def gpt_on_leaf(row):
        nodes = row["nodes"]
        parents = {n["parent_id"] for n in nodes}
        leaf = next(n for n in nodes if n["node_id"] not in parents)
        leaf["gpt"] = copy.deepcopy(nodes[0]["gpt"])

    def llama3_on_internal(row):
        row["nodes"][0]["llama3_caption"] = "a caption"

    def missing_gpt(row):
        row["nodes"][0]["gpt"] = None

    def out_of_order(row):
        nodes = row["nodes"]
        nodes[1], nodes[2] = nodes[2], nodes[1]

    return {
        "3 children": three_children,
        "gap": gap,
        "wrong level": wrong_level,
        "short leaf": short_leaf,
        "two roots": two_roots,
        "duplicate ids": duplicate_ids,
        "gpt on a leaf": gpt_on_leaf,
        "llama3 on internal": llama3_on_internal,
        "missing gpt": missing_gpt,
        "not breadth-first": out_of_order,
    }


@pytest.mark.parametrize("kind", sorted(_mutations()))
def test_validate_rejects_each_broken_tree(release_sample, kind):
    row = _sample_row(release_sample)
    _mutations()[kind](row)
    table = pa.Table.from_pylist([row], schema=RELEASE_SCHEMA)
    problems = table_violations(table)
    assert problems, kind


def test_validate_rejects_wrong_column_types(release_sample):
    table = pq.read_table(release_sample)
    nodes_type = table.schema.field("nodes").type
    wrong = pa.list_(
        pa.struct(
            [
                pa.field(f.name, pa.float64() if f.name == "start" else f.type)
                for f in nodes_type.value_type
            ]
        )
    )
    broken = table.set_column(2, "nodes", table.column("nodes").cast(wrong))
    problems = table_violations(broken)
    assert problems and "nodes" in problems[0]
    renamed = table.rename_columns(["uid", "metadata", "nodes"])
    assert any("video_uid" in p for p in table_violations(renamed))
