"""Stage timing follows the work, wherever the runner interleaves nodes."""

from __future__ import annotations

import time

from kedro.pipeline import Node

from action100m.runtime.tracking import RunTrackingHook, storage_metrics, stored_bytes


def _node(name: str) -> Node:
    return Node(func=lambda x: x, inputs=f"{name}_in", outputs=f"{name}_out", name=name)


def test_a_stage_is_timed_until_its_lazy_saves_end_even_when_nodes_overlap():
    hook = RunTrackingHook()
    hook._stage_of = {"embed": "segmentation", "caption": "captioning"}
    embed, caption = _node("embed"), _node("caption")

    hook.before_node_run(embed)
    hook.after_node_run(embed, {})  # the node returns lazy work at once
    hook.before_node_run(caption)  # a threaded runner starts another node
    time.sleep(0.3)  # meanwhile the first node's save runs its videos
    hook.after_dataset_saved("intermediate_frame_embeddings", embed)
    time.sleep(0.2)
    hook.after_node_run(caption, {})
    hook.after_dataset_saved("intermediate_captions", caption)
    hook._close()

    assert 0.3 <= hook.wall["segmentation"] < 0.45
    assert 0.5 <= hook.wall["captioning"] < 0.65
    # Overlapping spans of one stage count once.
    hook = RunTrackingHook()
    hook._stage_of = {"a": "export", "b": "export"}
    hook.before_node_run(_node("a"))
    hook.before_node_run(_node("b"))
    time.sleep(0.2)
    hook.after_dataset_saved("x", _node("a"))
    hook.after_dataset_saved("y", _node("b"))
    hook._close()
    assert 0.2 <= hook.wall["export"] < 0.3


def test_storage_is_measured_per_video_hour(tmp_path):
    folder = tmp_path / "intermediate" / "captions"
    (folder / "_made_by").mkdir(parents=True)
    (folder / "a.json").write_bytes(b"x" * 300)
    (folder / "_made_by" / "a.json").write_bytes(b"y" * 100)
    release = tmp_path / "action100m.parquet"
    release.write_bytes(b"z" * 50)
    assert stored_bytes(str(folder)) == 400
    metrics = storage_metrics(
        {
            "intermediate_captions": str(folder),
            "release_parquet": release.as_uri(),
            "not_written": str(tmp_path / "absent"),
            "in_a_bucket": "s3://bucket/x.parquet",
        },
        video_hours=0.5,
    )
    assert metrics == {
        "storage.intermediate_captions_bytes_per_video_hour": 800.0,
        "storage.release_parquet_bytes_per_video_hour": 100.0,
    }
    assert storage_metrics({"intermediate_captions": str(folder)}, 0.0) == {}
