"""The dataset card written beside the FiftyOne export."""

from __future__ import annotations

import posixpath
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from action100m.core.params import (
    AggregationParams,
    CaptioningParams,
    ExportParams,
    SegmentationParams,
)
from action100m.pipelines.export import create_pipeline
from action100m.pipelines.export.nodes import write_dataset_card
from action100m.release.dataset_card import (
    PAPER_SEGMENTS,
    PAPER_VIDEOS,
    card_statistics,
    size_category,
)
from action100m.runtime.run_record import RUN_CONFIG, RUN_CONFIG_FILE
from tests.test_params import conf_params

ROOT = Path(__file__).resolve().parents[1]


def split_card(text: str) -> tuple[dict, str]:
    assert text.startswith("---\n")
    header, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(header), body


def test_size_categories_follow_the_hub_bounds():
    assert [size_category(n) for n in (0, 999, 1000, 1144, 10_000, 2_000_000)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "1K<n<10K",
        "10K<n<100K",
        "1M<n<10M",
    ]
    assert size_category(50_000_000) == "n>10M"


def test_statistics_add_hours_and_depth(release_sample):
    table = pq.read_table(release_sample)
    stats = card_statistics(table)
    rows = table.to_pylist()
    ends = [max(n["end"] for n in r["nodes"]) for r in rows]
    depths = [max(n["level"] for n in r["nodes"]) for r in rows]
    assert stats["video_hours"] == pytest.approx(sum(ends) / 3600)
    assert stats["mean_tree_depth"] == pytest.approx(sum(depths) / len(rows))
    assert stats["max_depth"] == max(depths)
    gpt = sum(n["gpt"] is not None for r in rows for n in r["nodes"])
    assert stats["gpt_nodes_per_video"] == pytest.approx(gpt / len(rows))
    # The paper's annotated segments per video, next to which the run's stand.
    assert 120 < PAPER_SEGMENTS / PAPER_VIDEOS < 125


def test_export_pipeline_writes_the_card_beside_the_fiftyone_folder():
    (node,) = [n for n in create_pipeline().nodes if "dataset_card" in n.outputs]
    assert node.outputs == ["dataset_card", "release_card"]
    assert "release_parquet" in node.inputs and "params:export" in node.inputs
    catalog = yaml.safe_load((ROOT / "conf" / "base" / "catalog.yml").read_text())
    folder = catalog["fiftyone_dataset"]["path"]
    assert catalog["dataset_card"]["filepath"] == f"{folder}/README.md"
    # The release card sits in the output folder, above the shards it names.
    shards = catalog["release_parquet"]["path"]
    assert catalog["release_card"]["filepath"] == shards.replace("/data", "/README.md")


def test_the_card_names_the_run_record_beside_its_folder(release_sample):
    catalog = yaml.safe_load((ROOT / "conf" / "base" / "catalog.yml").read_text())
    folder = catalog["fiftyone_dataset"]["path"]
    beside = f"{posixpath.dirname(folder)}/{RUN_CONFIG_FILE}"
    assert catalog[RUN_CONFIG]["filepath"] == beside
    _, body = split_card(card_for(pq.read_table(release_sample), conf_params("base")))
    assert f"`{RUN_CONFIG_FILE}`, beside this folder" in body


def card_for(table, params: dict, shards: bool = False) -> str:
    return write_dataset_card(
        table,
        SegmentationParams.model_validate(params["segmentation"]),
        CaptioningParams.model_validate(params["captioning"]),
        AggregationParams.model_validate(params["aggregation"]),
        ExportParams.model_validate(params["export"]),
    )[shards]


def test_release_card_names_the_shards_for_datasets(release_sample):
    params = conf_params("demo")
    fiftyone_header, _ = split_card(card_for(pq.read_table(release_sample), params))
    header, body = split_card(card_for(release_sample, params, shards=True))
    assert "configs" not in fiftyone_header
    assert header["configs"] == [
        {
            "config_name": "default",
            "data_files": [{"split": "train", "path": "data/*.parquet"}],
        }
    ]
    assert 'load_dataset("PATH", split="train")' in header["dataset_summary"]
    assert "with 6 videos" in body and "`nodes` (list of struct)" in body
    assert header["license"] == fiftyone_header["license"]


def test_card_of_a_demo_run_names_its_models_and_licence(release_sample, tmp_path):
    table = pq.read_table(release_sample)
    params = conf_params("demo")
    plm_folder = tmp_path / "perception_lm"
    plm_folder.mkdir()
    (plm_folder / "config.json").write_text('{"model_type": "perception_lm"}')
    params["captioning"]["plm"]["model_id"] = str(plm_folder)
    params["captioning"]["llama"].update(backend="openai", model_id="served-llama")
    params["export"] = {"card": {"license": "cc-by-4.0", "hub_repo_id": "me/boxes"}}
    header, body = split_card(card_for(table, params))
    assert header["license"] == "cc-by-4.0"
    assert header["tags"] == ["fiftyone", "video"]
    assert 'load_from_hub("me/boxes")' in header["dataset_summary"]
    assert 'load_from_hub("me/boxes")' in body
    assert "| 1 segmentation | frame embeddings (color_histogram) | `-` | `-` |" in body
    plm_row = next(line for line in body.splitlines() if str(plm_folder) in line)
    assert "32 frames at 320 px" in plm_row and "`sha256:" in plm_row
    assert "| `served-llama` | `served` |" in body
    llm = AggregationParams.model_validate(params["aggregation"]).llm
    assert f"`{llm.model}`" in body
    assert f"({llm.rounds} Self-Refine rounds" in body
    # The revision is the folder's content: a changed model, a changed row.
    (plm_folder / "config.json").write_text('{"model_type": "perception_lm", "x": 1}')
    _, again = split_card(card_for(table, params))
    assert plm_row not in again and str(plm_folder) in again


def test_paper_settings_name_the_paper_models(release_sample):
    _, body = split_card(card_for(pq.read_table(release_sample), conf_params("base")))
    for model in (
        "facebook/vjepa2-vitg-fpc64-384",
        "facebook/Perception-LM-3B",
        "meta-llama/Llama-3.2-11B-Vision-Instruct",
    ):
        assert f"`{model}`" in body
    assert "| `openai/gpt-oss-120b` | `served` |" in body
