"""FiftyOne export and dataset card: the files always; real FiftyOne where it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from action100m.console import main
from action100m.core.schema import GPT_FIELDS
from action100m.core.tree import SegmentTree
from action100m.datasets import FiftyOneDatasetDir
from action100m.release.fiftyone_format import (
    METADATA_SAMPLE_FIELDS,
    VideoFrames,
    field_name,
    frame_support,
    parse_upload_date,
    transcript_entries,
    video_sample,
)
from action100m.release.shards import read_release
from tests.pipelines.aggregation.test_prompts import captioned_tree

ROOT = Path(__file__).resolve().parents[1]
FIELDS = [field_name(*f) for f in GPT_FIELDS]
# The card's sample fields and the FiftyOne types a loaded dataset must give them.
SEED_TYPES = {
    **{name: [ftype, None] for name, ftype in METADATA_SAMPLE_FIELDS},
    "transcript_segments": ["EmbeddedDocumentField", "TemporalDetections"],
    **{name: ["EmbeddedDocumentField", "TemporalDetections"] for name in FIELDS},
}
FULL_METADATA = {
    "title": "<b>Boxes</b>",
    "description": "Moving boxes.",
    "view_count": 12,
    "like_count": 3,
    "duration": 31,
    "upload_date": "20190212",
    "transcript": [
        {"time": "9.5", "text": "then  the\nsecond"},
        {"time": "0.25", "text": "first box"},
        {"time": "soon", "text": "unreadable time"},
        {"time": "20", "text": "last"},
    ],
}


def annotated_tree(uid: str, metadata: dict | None = None):
    """Every internal node annotated; the second one's action is "N/A"."""
    tree = captioned_tree(uid, metadata if metadata is not None else {})
    kids = tree.children()
    internal = [n.node_id for n in tree.nodes if n.node_id in kids]
    tree.update_nodes(
        {
            node_id: {
                "gpt": {
                    "summary": {"brief": f"s {node_id}", "detailed": "d"},
                    "action": {
                        "brief": " N/A" if i == 1 else "move",
                        "detailed": "Move.",
                        "actor": "N/A",
                    },
                }
            }
            for i, node_id in enumerate(internal)
        }
    )
    return tree


def test_supports_are_one_based_inclusive_and_inside_the_video():
    video = VideoFrames("v.mp4", fps=25.0, frame_count=100)
    assert frame_support(0.0, 4.0, video) == [1, 100]
    assert frame_support(0.0, 0.04, video) == [1, 1]
    assert frame_support(1.0, 2.0, video) == [26, 50]
    assert frame_support(3.99, 4.5, video) == [100, 100]  # clipped to the last frame


def test_upload_dates_and_transcript_spans():
    assert parse_upload_date("20110519") == datetime(2011, 5, 19, tzinfo=UTC)
    assert parse_upload_date("2011-05-19") == datetime(2011, 5, 19, tzinfo=UTC)
    assert parse_upload_date("2011-05-19T10:30:00+02:00") == datetime(
        2011, 5, 19, 8, 30, tzinfo=UTC
    )
    for unreadable in ("yesterday", "20111399", "", None):
        assert parse_upload_date(unreadable) is None
    assert transcript_entries(FULL_METADATA, 24.0) == [
        (0.25, 9.5, "first box"),
        (9.5, 20.0, "then the second"),
        (20.0, 24.0, "last"),
    ]
    # A line after the video's end lasts no time; no transcript, no entries.
    assert transcript_entries(FULL_METADATA, 12.0)[-1] == (20.0, 20.0, "last")
    assert transcript_entries({"transcript": None}, 5.0) == []


def test_samples_hold_every_field_of_the_card(tmp_path):
    trees = [annotated_tree("Ab3_x-9ZqL0", FULL_METADATA), annotated_tree("b")]
    video = VideoFrames(str(tmp_path / "a.mp4"), 10.0, 240, 64, 48, 24.0)
    folder = tmp_path / "fo"
    FiftyOneDatasetDir(path=str(folder)).save(video_sample(t, video) for t in trees)
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["media_type"] == "video" and meta["version"]
    declared = {f["name"]: f for f in meta["sample_fields"]}
    for name, (ftype, document) in SEED_TYPES.items():
        assert declared[name]["ftype"] == f"fiftyone.core.fields.{ftype}"
        assert (declared[name]["embedded_doc_type"] or "").endswith(document or "")
    full, bare = FiftyOneDatasetDir(path=str(folder)).load()
    assert full["video_uid"] == "Ab3_x-9ZqL0" and full["_media_type"] == "video"
    assert {k: full[k] for k in ("title", "description", "view_count")} == {
        "title": "<b>Boxes</b>",
        "description": "Moving boxes.",
        "view_count": 12,
    }
    assert full["like_count"] == 3 and full["full_video_duration"] == 31.0
    assert full["full_video_url"] == "https://www.youtube.com/watch?v=Ab3_x-9ZqL0"
    assert full["upload_date"] == {"$date": "2019-02-12T00:00:00.000Z"}
    assert full["transcript"] == "first box then the second last"
    assert full["tree_depth"] == trees[0].max_depth() >= 2
    spans = full["transcript_segments"]["detections"]
    assert [(d["label"], d["start"], d["end"], d["support"]) for d in spans] == [
        ("first box", 0.25, 9.5, [3, 95]),
        ("then the second", 9.5, 20.0, [96, 200]),
        ("last", 20.0, 24.0, [201, 240]),
    ]
    # No metadata: every metadata field is null, the tree's depth is still known.
    for name, _ in METADATA_SAMPLE_FIELDS:
        assert (bare[name] is None) == (name != "tree_depth"), name
    assert bare["transcript_segments"] is None

    ids = set()
    for tree, sample in zip(trees, (full, bare), strict=True):
        annotated = [n for n in tree.nodes if n.gpt is not None]
        for group, key in GPT_FIELDS:
            name = field_name(group, key)
            kept = [
                n for n in annotated if name != "gpt_action_brief" or n != annotated[1]
            ]
            detections = sample[name]["detections"]
            assert [d["node_id"] for d in detections] == [n.node_id for n in kept]
            for node, d in zip(kept, detections, strict=True):
                assert d["_cls"] == "TemporalDetection"
                assert d["label"] == node.gpt[group][key]
                assert d["parent_id"] == node.parent_id and d["level"] == node.level
                assert (d["start"], d["end"]) == (node.start, node.end)
                assert 1 <= d["support"][0] <= d["support"][1] <= 240
                ids.add(d["_id"]["$oid"])
        assert sample["gpt_summary_brief"]["detections"][0]["parent_id"] is None
        assert len(sample["gpt_action_brief"]["detections"]) == len(annotated) - 1
    assert len(ids) == 2 * (len(FIELDS) * len(annotated) - 1)
    assert all(len(i) == 24 and int(i, 16) >= 0 for i in ids)


def card_parts(text: str) -> tuple[dict, str]:
    assert text.startswith("---\n")
    header, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(header), body


def test_console_exports_a_release_parquet_with_its_card(release_sample, tmp_path):
    out = tmp_path / "fo"
    assert main(["fiftyone", str(release_sample), "--out", str(out)]) == 1
    command = ["fiftyone", str(release_sample), "--out", str(out), "--fps", "30"]
    assert main([*command, "--license", "cc-by-nc-4.0"]) == 0
    rows = pq.read_table(release_sample).to_pylist()
    samples = FiftyOneDatasetDir(path=str(out)).load()
    assert [s["video_uid"] for s in samples] == [r["video_uid"] for r in rows]
    na = gpt_total = 0
    for row, sample in zip(rows, samples, strict=True):
        meta, uid = row["metadata"], row["video_uid"]
        for name in ("title", "description", "view_count", "like_count"):
            assert sample[name] == meta[name]
        assert sample["full_video_duration"] == float(meta["duration"])
        assert sample["full_video_url"] == f"https://www.youtube.com/watch?v={uid}"
        day = datetime.strptime(meta["upload_date"], "%Y%m%d").date().isoformat()
        assert sample["upload_date"]["$date"].startswith(day + "T00:00:00")
        assert sample["tree_depth"] == max(n["level"] for n in row["nodes"])
        words = [" ".join(e["text"].split()) for e in meta["transcript"]]
        assert sample["transcript"] == " ".join(w for w in words if w)
        spans = sample["transcript_segments"]["detections"]
        assert [d["start"] for d in spans] == [
            float(e["time"]) for e in meta["transcript"]
        ]
        assert all(a["end"] == b["start"] for a, b in zip(spans, spans[1:]))
        assert spans[-1]["end"] == pytest.approx(row["nodes"][0]["end"])
        gpt_nodes = [n for n in row["nodes"] if n["gpt"] is not None]
        actions = [n for n in gpt_nodes if n["gpt"]["action"]["brief"] != "N/A"]
        for name in FIELDS:
            expected = actions if name == "gpt_action_brief" else gpt_nodes
            found = [d["node_id"] for d in sample[name]["detections"]]
            assert found == [n["node_id"] for n in expected]
        total = sample["metadata"]["total_frame_count"]
        for d in sample["gpt_action_brief"]["detections"]:
            assert 1 <= d["support"][0] <= d["support"][1] <= total
        na += len(gpt_nodes) - len(actions)
        gpt_total += len(gpt_nodes)
    assert 0 < na < gpt_total

    header, body = card_parts((out / "README.md").read_text())
    assert header["license"] == "cc-by-nc-4.0"
    assert header["size_categories"] == ["n<1K"] and "fiftyone" in header["tags"]
    assert f"dataset with {len(rows)} video samples" in header["dataset_summary"]
    for name in SEED_TYPES:
        assert f"- `{name}`" in body, name
    assert f"| videos | {len(rows)} | 1,199,096 |" in body
    assert f'| "N/A" actions | {na / gpt_total:.2%} | 3.23% |' in body
    assert "does not record which models" in body


def load_with_fiftyone(folder: Path, tmp_path: Path) -> dict:
    """What real FiftyOne reads from a dataset directory (``fiftyone_load.py``)."""
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
    env = {
        **os.environ,
        "FIFTYONE_DO_NOT_TRACK": "true",
        "FIFTYONE_DATABASE_DIR": str(tmp_path / "db"),
        "FIFTYONE_CONFIG_PATH": str(tmp_path / "no_config.json"),
        "FIFTYONE_DATABASE_VALIDATION": "false",
    }
    libssl = ROOT / ".fiftyone" / "libssl" / "usr" / "lib" / "x86_64-linux-gnu"
    if libssl.is_dir():
        env["LD_LIBRARY_PATH"] = f"{libssl}:{env.get('LD_LIBRARY_PATH', '')}"
    result = tmp_path / "loaded.json"
    done = subprocess.run(
        [python, str(ROOT / "tests" / "fiftyone_load.py"), str(folder), str(result)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    if done.returncode != 0 and "mongod" in done.stderr.lower():
        pytest.skip(f"FiftyOne's database cannot start here: {done.stderr[-500:]}")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(result.read_text())


def assert_loaded_as_written(loaded: dict, folder: Path) -> None:
    """Every seed field has its FiftyOne type and the values that were written."""
    for name, expected in SEED_TYPES.items():
        assert loaded["schema"][name] == expected, name
    written = FiftyOneDatasetDir(path=str(folder)).load()
    assert sorted(loaded["samples"]) == sorted(s["video_uid"] for s in written)
    clips = 0
    for sample in written:
        got = loaded["samples"][sample["video_uid"]]
        assert got["media_type"] == "video" and got["filepath"] == sample["filepath"]
        for name, ftype in METADATA_SAMPLE_FIELDS:
            value = sample[name]
            if ftype == "DateTimeField" and value is not None:
                value = value["$date"].removesuffix(".000Z")
            assert got[name] == value, name
        for name in ["transcript_segments", *FIELDS]:
            if sample[name] is None:
                assert got[name] is None
                continue
            expected = [
                {
                    "id": d["_id"]["$oid"],
                    **{k: v for k, v in d.items() if k not in ("_id", "_cls", "tags")},
                }
                for d in sample[name]["detections"]
            ]
            for d in expected:
                del d["confidence"]
            assert got[name] == expected, name
        clips += len(sample["gpt_action_brief"]["detections"])
    assert loaded["clips"] == clips > 0


@pytest.mark.slow
def test_real_fiftyone_reads_every_field_back(tmp_path, cut_videos, release_sample):
    folder, _ = cut_videos
    rows = pq.read_table(release_sample).to_pylist()[:2]
    samples = []
    for row in rows:
        tree = SegmentTree.from_release_row(row)
        duration = tree.root.end
        video = VideoFrames(f"/videos/{tree.video_uid}.mp4", 30.0, round(duration * 30))
        samples.append(video_sample(tree, video))
    bare = VideoFrames.from_probe(
        str(folder / "cuts_a.mp4"),
        {"fps": 25.0, "duration": 24.0, "frame_count": 600, "width": 64, "height": 48},
    )
    samples.append(video_sample(annotated_tree("cuts_a"), bare))
    out = tmp_path / "fo"
    FiftyOneDatasetDir(path=str(out)).save(samples)
    loaded = load_with_fiftyone(out, tmp_path)
    assert_loaded_as_written(loaded, out)
    first = loaded["samples"][rows[0]["video_uid"]]
    assert first["upload_date"].startswith("2011-05-19")
    assert first["title"] == rows[0]["metadata"]["title"]
    assert loaded["samples"]["cuts_a"]["title"] is None
    assert any(
        d["parent_id"] is None for d in loaded["samples"]["cuts_a"]["gpt_action_brief"]
    )


@pytest.mark.slow
def test_demo_run_exports_every_field_and_a_card(tmp_path, cut_videos, tiny_models):
    from tests.test_run import kedro_run

    folder, _ = cut_videos
    videos = tmp_path / "videos"
    videos.mkdir()
    for uid in ("cuts_a", "cuts_c"):
        (videos / f"{uid}.mp4").write_bytes((folder / f"{uid}.mp4").read_bytes())
    sidecar = {**FULL_METADATA, "upload_date": "2019-02-12T08:00:00Z"}
    del sidecar["duration"]  # ingest fills it from the probe
    # Ingest rejects a sidecar with an unreadable time: keep the readable lines.
    sidecar["transcript"] = [e for e in sidecar["transcript"] if e["time"] != "soon"]
    (videos / "cuts_a.json").write_text(json.dumps(sidecar))
    out = tmp_path / "out"
    params = (
        f"videos_dir={videos},output_dir={out},"
        f"captioning.plm.model_id={tiny_models['perception_lm']},"
        f"captioning.llama.model_id={tiny_models['mllama']},"
        f"aggregation.llm.model={tiny_models['gpt_oss']},"
        "export.card.license=cc-by-4.0"
    )
    run = kedro_run(tmp_path, "--env", "demo", "--params", params)
    assert run.returncode == 0, run.stderr[-3000:]

    loaded = load_with_fiftyone(out / "fiftyone", tmp_path)
    assert_loaded_as_written(loaded, out / "fiftyone")
    full, bare = loaded["samples"]["cuts_a"], loaded["samples"]["cuts_c"]
    assert (full["title"], full["view_count"], full["like_count"]) == (
        "<b>Boxes</b>",
        12,
        3,
    )
    assert full["upload_date"] == "2019-02-12T08:00:00"
    assert full["transcript"] == "first box then the second last"
    manifest = (out / "intermediate" / "video_manifest.jsonl").read_text()
    probed = {
        v["video_uid"]: v["duration"] for v in map(json.loads, manifest.splitlines())
    }
    for uid in ("cuts_a", "cuts_c"):  # whole seconds, as the release has them
        assert loaded["samples"][uid]["full_video_duration"] == round(probed[uid])
    assert [d["label"] for d in full["transcript_segments"]] == [
        "first box",
        "then the second",
        "last",
    ]
    assert bare["title"] is None and bare["upload_date"] is None
    assert bare["transcript"] is None and bare["transcript_segments"] is None
    assert full["full_video_url"] is None  # "cuts_a" is no YouTube id
    table = read_release(out).to_pylist()
    for row in table:
        sample = loaded["samples"][row["video_uid"]]
        assert sample["tree_depth"] == max(n["level"] for n in row["nodes"])
        annotated = [n["node_id"] for n in row["nodes"] if n["gpt"] is not None]
        assert [d["node_id"] for d in sample["gpt_summary_brief"]] == annotated

    header, body = card_parts((out / "fiftyone" / "README.md").read_text())
    assert header["license"] == "cc-by-4.0"
    assert f"dataset with {len(table)} video samples" in header["dataset_summary"]
    for role in ("perception_lm", "mllama", "gpt_oss"):
        row = next(line for line in body.splitlines() if str(tiny_models[role]) in line)
        assert "| `sha256:" in row
    assert f"| videos | {len(table)} | 1,199,096 |" in body
