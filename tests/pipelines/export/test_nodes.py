"""Export nodes on partitions written by the real datasets."""

from __future__ import annotations

from action100m.core.errors import VideoFailure
from action100m.core.params import ExportParams
from action100m.core.tree import SegmentTree
from action100m.datasets import VideoPartitionsDataset
from action100m.models.llm.refine import eligible_nodes
from action100m.pipelines.export.nodes import (
    collect_errors,
    export_video_trees,
    release_shards,
    render_views,
)
from tests.pipelines.aggregation.test_prompts import captioned_tree


def _saved(tmp_path, name: str, data: dict):
    dataset = VideoPartitionsDataset(path=str(tmp_path / name))
    dataset.save({uid: (lambda v=v: v) for uid, v in data.items()})
    return dataset.load()


def _stages(tmp_path):
    trees = {u: captioned_tree(u, {"title": f"Video {u}"}) for u in ("a", "b", "c")}
    for tree in trees.values():  # mid-frame captions on leaves only, as Stage 2
        kids = tree.children()
        tree.update_nodes(
            {
                n.node_id: {"llama3_caption": None}
                for n in tree.nodes
                if n.node_id in kids
            }
        )
    bare = {u: SegmentTree.from_dict(t.to_dict()) for u, t in trees.items()}
    for tree in bare.values():  # Stage 1 alone: no captions yet
        tree.update_nodes(
            {
                n.node_id: {
                    "plm_caption": None,
                    "plm_action": None,
                    "llama3_caption": None,
                }
                for n in tree.nodes
            }
        )
    segment_trees = _saved(tmp_path, "trees", {u: t.to_dict() for u, t in bare.items()})
    fields = ("plm_caption", "plm_action", "llama3_caption")
    captions = _saved(
        tmp_path,
        "captions",
        {
            u: {
                "captions": {
                    n.node_id: {f: getattr(n, f) for f in fields} for n in t.nodes
                },
                "errors": [],
            }
            for u, t in trees.items()
        },
    )
    first = eligible_nodes(trees["a"])[0].node_id
    gpt = {
        "summary": {"brief": "A box moves.", "detailed": "A person moves a box."},
        "action": {
            "brief": "Move a box",
            "detailed": "Lift the box.",
            "actor": "A person",
        },
    }
    annotations = _saved(
        tmp_path,
        "annotations",
        {
            "a": {
                "annotations": {n.node_id: gpt for n in eligible_nodes(trees["a"])},
                "errors": [
                    {"node_id": first, "field": "gpt", "reason": "round 3: HTTP 500",
                     "landed_round": 2}
                ],
            },
            "b": VideoFailure("b", "aggregation", "the client could not start"),
        },
    )  # fmt: skip
    manifest = [
        {"video_uid": u, "path": f"/videos/{u}.mp4", "duration": t.root.end}
        for u, t in trees.items()
    ]
    return trees, segment_trees, captions, annotations, manifest


def test_release_rows_join_every_stage_and_errors_name_each_gap(tmp_path):
    trees, segment_trees, captions, annotations, manifest = _stages(tmp_path)
    release = VideoPartitionsDataset(path=str(tmp_path / "release"))
    release.save(export_video_trees(segment_trees, captions, annotations, manifest))
    release_trees = release.load()

    shards = release_shards(release_trees, manifest, ExportParams(shard_rows=7))
    assert shards.shard_rows == 7 and not shards.single_file
    rows = {uid: shards.row(uid) for uid, _ in shards.videos}
    assert list(rows) == ["a", "c"]  # b's Stage 3 failed as a whole
    tree_a = SegmentTree.from_release_row(rows["a"])
    assert tree_a.violations(require_captions=True) == []
    eligible = {n.node_id for n in eligible_nodes(tree_a)}
    assert {n.node_id for n in tree_a.nodes if n.gpt} == eligible
    tree_c = SegmentTree.from_release_row(rows["c"])
    assert all(n.gpt is None for n in tree_c.nodes)  # not annotated yet: null
    assert all(n.plm_caption for n in tree_c.nodes)

    ingest = [{"video_uid": "broken", "stage": "ingest", "reason": "not a video"}]
    errors = collect_errors(release_trees, captions, annotations, manifest, ingest)
    assert errors[0] == ingest[0]
    by_stage = {(e["video_uid"], e["stage"]) for e in errors[1:]}
    assert by_stage == {("a", "aggregation"), ("b", "aggregation")}
    node_error = next(e for e in errors if e.get("node_id"))
    assert node_error["landed_round"] == 2 and node_error["source"] == "/videos/a.mp4"


def test_a_tree_is_rebuilt_only_when_a_stage_output_of_it_changed(tmp_path):
    trees, segment_trees, captions, annotations, manifest = _stages(tmp_path)
    release = VideoPartitionsDataset(path=str(tmp_path / "release"))
    pages = VideoPartitionsDataset(path=str(tmp_path / "viewer"), format="bytes")
    images = VideoPartitionsDataset(path=str(tmp_path / "timelines"), format="bytes")

    def export() -> None:
        release.save(export_video_trees(segment_trees, captions, annotations, manifest))
        drawn = render_views(release.load(), manifest, str(tmp_path))
        for dataset, views in zip((pages, images), drawn, strict=True):
            dataset.save(views)

    export()
    first = dict(release_shards(release.load(), manifest, ExportParams()).videos)
    assert set(first) == {"a", "c"} and None not in first.values()

    export()
    for dataset in (release, pages, images):
        assert dataset.counts["written"] == 0 and dataset.counts["reused"] == 2

    # New captions for c (written without a record, as by an older version):
    # c's tree is rebuilt and its fingerprint, which the shards compare, moves.
    changed = captions["c"]()
    node = next(iter(changed["captions"]))
    changed["captions"][node]["plm_caption"] = "another caption"
    rewrite = VideoPartitionsDataset(
        path=str(tmp_path / "captions"), skip_existing=False
    )
    rewrite.save({"c": changed})
    captions = VideoPartitionsDataset(path=str(tmp_path / "captions")).load()
    export()
    for dataset in (release, pages, images):
        assert dataset.counts["written"] == 1 and dataset.counts["reused"] == 1
    again = dict(release_shards(release.load(), manifest, ExportParams()).videos)
    assert again["a"] == first["a"] and again["c"] != first["c"]
    rebuilt = SegmentTree.from_release_json(release.load()["c"]())
    by_id = {n.node_id: n for n in rebuilt.nodes}
    assert by_id[node].plm_caption == "another caption"
