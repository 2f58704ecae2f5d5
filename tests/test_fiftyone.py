"""FiftyOne export: the files' format always; real FiftyOne where it can start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from action100m.console import main
from action100m.datasets import FiftyOneDatasetDir
from action100m.fiftyone_format import (
    VideoFrames,
    field_name,
    frame_support,
    video_sample,
)
from action100m.schema import GPT_FIELDS
from tests.pipelines.aggregation.test_prompts import captioned_tree

ROOT = Path(__file__).resolve().parents[1]
FIELDS = [field_name(*f) for f in GPT_FIELDS]


def annotated_tree(uid: str):
    tree = captioned_tree(uid, {"title": "<b>Boxes</b>", "transcript": []})
    kids = tree.children()
    tree.update_nodes(
        {
            n.node_id: {
                "gpt": {
                    "summary": {"brief": f"s {n.node_id}", "detailed": "d"},
                    "action": {"brief": "move", "detailed": "Move.", "actor": "N/A"},
                }
            }
            for n in tree.nodes
            if n.node_id in kids
        }
    )
    return tree


def test_supports_are_one_based_inclusive_and_inside_the_video():
    video = VideoFrames("v.mp4", fps=25.0, frame_count=100)
    assert frame_support(0.0, 4.0, video) == [1, 100]
    assert frame_support(0.0, 0.04, video) == [1, 1]
    assert frame_support(1.0, 2.0, video) == [26, 50]
    assert frame_support(3.99, 4.5, video) == [100, 100]  # clipped to the last frame


def test_samples_hold_a_temporal_detection_per_annotated_node(tmp_path):
    trees = [annotated_tree("a"), annotated_tree("b")]
    video = VideoFrames(str(tmp_path / "a.mp4"), 10.0, 240, 64, 48, 24.0)
    folder = tmp_path / "fo"
    FiftyOneDatasetDir(path=str(folder)).save(video_sample(t, video) for t in trees)
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["media_type"] == "video" and meta["version"]
    declared = {f["name"]: f for f in meta["sample_fields"]}
    for name in FIELDS:
        assert declared[name]["embedded_doc_type"].endswith(".TemporalDetections")
    samples = FiftyOneDatasetDir(path=str(folder)).load()
    assert [s["video_uid"] for s in samples] == ["a", "b"]
    ids = set()
    for tree, sample in zip(trees, samples, strict=True):
        assert sample["_media_type"] == "video" and sample["title"] == "<b>Boxes</b>"
        annotated = [n for n in tree.nodes if n.gpt is not None]
        for group, key in GPT_FIELDS:
            detections = sample[field_name(group, key)]["detections"]
            assert [d["node_id"] for d in detections] == [n.node_id for n in annotated]
            for node, d in zip(annotated, detections, strict=True):
                assert d["_cls"] == "TemporalDetection"
                assert d["label"] == node.gpt[group][key]
                assert d["parent_id"] == node.parent_id and d["level"] == node.level
                assert 1 <= d["support"][0] <= d["support"][1] <= 240
                ids.add(d["_id"]["$oid"])
        assert sample["gpt_summary_brief"]["detections"][0]["parent_id"] is None
    assert len(ids) == len(FIELDS) * sum(
        n.gpt is not None for t in trees for n in t.nodes
    )
    assert all(len(i) == 24 and int(i, 16) >= 0 for i in ids)


def test_console_exports_a_release_parquet(release_sample, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "fo"
    assert main(["fiftyone", str(release_sample), "--out", str(out)]) == 1
    assert (
        main(["fiftyone", str(release_sample), "--out", str(out), "--fps", "30"]) == 0
    )
    rows = pq.read_table(release_sample).to_pylist()
    samples = FiftyOneDatasetDir(path=str(out)).load()
    assert [s["video_uid"] for s in samples] == [r["video_uid"] for r in rows]
    for row, sample in zip(rows, samples, strict=True):
        gpt_nodes = [n for n in row["nodes"] if n["gpt"] is not None]
        for name in FIELDS:
            assert len(sample[name]["detections"]) == len(gpt_nodes)
        total = sample["metadata"]["total_frame_count"]
        for d in sample["gpt_action_brief"]["detections"]:
            assert 1 <= d["support"][0] <= d["support"][1] <= total


def _fiftyone_python() -> str:
    python = os.environ.get("ACTION100M_FIFTYONE_PYTHON") or str(
        ROOT / ".fiftyone" / "venv" / "bin" / "python"
    )
    if not Path(python).exists():
        python = sys.executable
    found = subprocess.run(
        [python, "-c", "import fiftyone.constants"],
        capture_output=True,
        check=False,
        timeout=120,
    )
    if found.returncode != 0:
        pytest.skip(
            "FiftyOne is not installed (make fiftyone-env builds an isolated one, "
            "or set ACTION100M_FIFTYONE_PYTHON)"
        )
    return python


@pytest.mark.slow
def test_real_fiftyone_reads_the_export_back(tmp_path, cut_videos):
    python = _fiftyone_python()
    folder, _ = cut_videos
    tree = annotated_tree("cuts_a")
    video = VideoFrames.from_probe(
        str(folder / "cuts_a.mp4"),
        {"fps": 25.0, "duration": 24.0, "frame_count": 600, "width": 64, "height": 48},
    )
    out = tmp_path / "fo"
    FiftyOneDatasetDir(path=str(out)).save([video_sample(tree, video)])
    env = {
        **os.environ,
        "FIFTYONE_DO_NOT_TRACK": "true",
        "FIFTYONE_DATABASE_DIR": str(tmp_path / "db"),
        "FIFTYONE_CONFIG_PATH": str(tmp_path / "no_config.json"),
        "FIFTYONE_DATABASE_VALIDATION": "false",
    }
    result = tmp_path / "loaded.json"
    libssl = ROOT / ".fiftyone" / "libssl" / "usr" / "lib" / "x86_64-linux-gnu"
    if libssl.is_dir():
        env["LD_LIBRARY_PATH"] = f"{libssl}:{env.get('LD_LIBRARY_PATH', '')}"
    done = subprocess.run(
        [python, str(ROOT / "tests" / "fiftyone_load.py"), str(out), str(result)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    if done.returncode != 0 and "mongod" in done.stderr.lower():
        pytest.skip(f"FiftyOne's database cannot start here: {done.stderr[-500:]}")
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(result.read_text())["samples"]["cuts_a"]
    assert loaded["media_type"] == "video"
    assert loaded["filepath"] == str(folder / "cuts_a.mp4")
    written = FiftyOneDatasetDir(path=str(out)).load()[0]
    for name in FIELDS:
        expected = [
            {
                "id": d["_id"]["$oid"],
                "label": d["label"],
                "support": d["support"],
                "node_id": d["node_id"],
                "parent_id": d["parent_id"],
                "level": d["level"],
            }
            for d in written[name]["detections"]
        ]
        assert loaded["labels"][name] == expected
    assert any(d["parent_id"] is None for d in loaded["labels"]["gpt_action_brief"])
