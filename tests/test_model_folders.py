"""A missing model folder stops the run at once, saying what to run."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from kedro.pipeline import Node

from action100m.runtime.model_folders import (
    MissingModelError,
    ModelFolderHook,
    missing_model_folders,
    names_a_folder,
)
from tests.test_run import kedro_run, mlflow_runs

DEMO_PARAMS = {
    "segmentation": {"embedder": {"backend": "color_histogram", "model_id": None}},
    "captioning": {
        "plm": {"backend": "transformers", "model_id": "data/06_models/absent_plm"},
        "llama": {"backend": "openai", "model_id": "meta-llama/served"},
    },
    "aggregation": {"llm": {"backend": "transformers", "model": "/nowhere/gpt_oss"}},
}


def test_paths_are_told_from_hub_ids(tmp_path):
    assert names_a_folder("data/06_models/perception_lm")
    assert names_a_folder("/models/vjepa2") and names_a_folder("./gpt")
    assert names_a_folder(str(tmp_path))
    assert not names_a_folder("facebook/Perception-LM-3B")
    assert not names_a_folder("gpt2")


def test_only_the_folders_of_the_nodes_that_run_are_required(tmp_path):
    every = {"embed_frames_node", "caption_trees_node", "annotate_segment_trees_node"}
    assert missing_model_folders(DEMO_PARAMS, every) == [
        ("aggregation.llm.model", "/nowhere/gpt_oss"),
        ("captioning.plm.model_id", "data/06_models/absent_plm"),
    ]
    assert missing_model_folders(DEMO_PARAMS, {"probe_videos_node"}) == []
    present = tmp_path / "gpt_oss"
    present.mkdir()
    params = {
        "aggregation": {"llm": {"backend": "transformers", "model": str(present)}}
    }
    assert missing_model_folders(params, every) == []


def _hook(params: dict) -> ModelFolderHook:
    """The hook as a run calls it: the context, then the pipeline's nodes."""
    hook = ModelFolderHook()
    hook.after_context_created(SimpleNamespace(params=params))
    hook.before_pipeline_run(
        SimpleNamespace(nodes=[Node(lambda x: x, "x", "y", name="caption_trees_node")])
    )
    return hook


@pytest.fixture(scope="module")
def ray_node():
    """A local one-node Ray cluster; its node's id."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().get_node_id()
    ray.shutdown()


def test_a_local_ray_instance_checks_this_disk():
    local_ray = DEMO_PARAMS | {"executor": {"kind": "ray", "ray": {"address": None}}}
    with pytest.raises(MissingModelError, match="absent_plm"):
        _hook(local_ray).before_node_run()


@pytest.mark.slow
def test_every_node_of_a_joined_ray_cluster_is_checked(ray_node, tmp_path, caplog):
    cluster = DEMO_PARAMS | {"executor": {"kind": "ray", "ray": {"address": "auto"}}}
    with pytest.raises(MissingModelError) as raised:
        _hook(cluster).before_node_run()
    said = str(raised.value)
    assert said.startswith(f"node {ray_node} (")
    assert (
        "model folder data/06_models/absent_plm (captioning.plm.model_id) does not "
        "exist (looked for in /"
    ) in said
    assert "/nowhere/gpt_oss" not in said  # aggregation does not run here

    present = tmp_path / "perception_lm"
    present.mkdir()
    captioners = {  # a folder every node has, and a hub id (no folder to check)
        "plm": {"backend": "transformers", "model_id": str(present)},
        "llama": {"backend": "transformers", "model_id": "meta-llama/Llama-3.2"},
    }
    with caplog.at_level("INFO", logger="action100m.runtime.model_folders"):
        _hook(cluster | {"captioning": captioners}).before_node_run()
    assert f"model folders {present} found on all 1 nodes" in caplog.text


@pytest.mark.slow
def test_run_names_the_folder_and_the_command_before_touching_a_video(
    tmp_path, cut_videos
):
    folder, _ = cut_videos
    out = tmp_path / "out"
    missing = "data/06_models/not_built_perception_lm"
    run = kedro_run(
        tmp_path,
        "--env",
        "demo",
        "--params",
        f"videos_dir={folder},output_dir={out},captioning.plm.model_id={missing}",
    )
    assert run.returncode != 0
    said = " ".join((run.stdout + run.stderr).split())  # the terminal wraps lines
    assert f"model folder {missing} (captioning.plm.model_id) does not exist" in said
    assert "action100m tiny-models --out data/06_models" in said
    assert "Repo id" not in said and "HFValidationError" not in said
    assert not out.exists()  # no video was probed, nothing was written
    _, (failed,) = mlflow_runs(tmp_path)
    assert failed.info.status == "FAILED"
