"""``--only-missing-outputs`` follows the records of what made every output."""

from __future__ import annotations

import json

from kedro.framework.hooks import hook_impl
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Node, Pipeline
from kedro.runner import SequentialRunner
from pydantic import BaseModel

from action100m.core.params import ExecutorParams, setting, tuning
from action100m.datasets import JSONFileDataset, VideoPartitionsDataset
from action100m.runtime.executor import map_videos
from action100m.runtime.fingerprint import made_by, stage_identity
from action100m.runtime.freshness import plan_reruns

UIDS = ["a", "b", "c"]


class Scaling(BaseModel):
    factor: int = setting(2, "What every number is multiplied by.")
    batch: int = tuning(1, "Numbers per call.")


def scale(manifest: list[str], params: Scaling):
    """Per-video work with records, as the stages make it."""
    identity = stage_identity("scale", params)
    return map_videos(
        "scale",
        {uid: (lambda i=i: i) for i, uid in enumerate(manifest)},
        lambda: lambda i: {"v": i * params.factor},
        ExecutorParams(),
        made_by=lambda uid: made_by(identity, {"input": uid}),
    )


def total(scaled) -> dict:
    return {"sum": sum(scaled[uid]()["v"] for uid in sorted(scaled))}


PIPELINE = Pipeline(
    [
        Node(scale, ["manifest", "params:scale"], "scaled", name="scale"),
        Node(total, "scaled", "summary", name="total"),
    ]
)


def run(tmp_path, **params) -> list[str]:
    """One run with --only-missing-outputs; the nodes that ran, in order."""
    catalog = DataCatalog(
        {
            "manifest": MemoryDataset(UIDS),
            "params:scale": MemoryDataset(Scaling(**params)),
            "scaled": VideoPartitionsDataset(path=str(tmp_path / "scaled")),
            "summary": JSONFileDataset(filepath=str(tmp_path / "summary.json")),
        }
    )
    planned = plan_reruns(PIPELINE, catalog)
    ran: list[str] = []

    class Recording:
        @hook_impl
        def before_node_run(self, node):
            ran.append(node.name)

    hooks = _create_hook_manager()
    hooks.register(Recording())
    SequentialRunner().run(PIPELINE, catalog, hooks, only_missing_outputs=True)
    assert planned == ran
    return ran


def test_nodes_rerun_for_missing_or_stale_videos_and_what_reads_them(tmp_path):
    assert run(tmp_path) == ["scale", "total"]
    assert run(tmp_path) == []
    assert run(tmp_path, batch=8) == []  # a tuning value changes nothing

    # A deleted video's output, the _SUCCESS marker still there.
    (tmp_path / "scaled" / "b.json").unlink()
    assert (tmp_path / "scaled" / "_SUCCESS").exists()
    assert run(tmp_path) == ["scale", "total"]
    assert json.loads((tmp_path / "scaled" / "b.json").read_text()) == {"v": 2}

    # Other settings: every video is remade, and so is what is built from them.
    assert run(tmp_path, factor=3) == ["scale", "total"]
    assert json.loads((tmp_path / "summary.json").read_text()) == {"sum": 9}
    assert run(tmp_path, factor=3) == []
