"""Local model folders the run will load: checked before any node runs.

A ``model_id`` that names a folder (``data/06_models/perception_lm``, ``/models/x``,
``./x``) and does not exist would otherwise reach the Hugging Face hub as a repo
id and fail, minutes later, with a validation error about its characters.
``ModelFolderHook`` stops the run as it starts instead, naming the folder, the
parameter and the command that builds or fetches it.

With ``executor.kind: ray`` and an ``executor.ray.address`` (a cluster this
machine joins), the models load on the cluster's nodes, whose disks this machine
cannot see: a folder missing here is then a warning, and a worker that lacks it
stops the run with the loader's own error when it loads the model.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)

DEMO_MODELS = "data/06_models"
# Node -> (parameter path, backends that load weights from model_id).
NEEDS = {
    "embed_frames_node": [("segmentation.embedder", "model_id", ("vjepa2",))],
    "caption_trees_node": [
        ("captioning.plm", "model_id", ("transformers",)),
        ("captioning.llama", "model_id", ("transformers",)),
    ],
    "annotate_segment_trees_node": [("aggregation.llm", "model", ("transformers",))],
    "annotate_release_trees_node": [("aggregation.llm", "model", ("transformers",))],
}


class MissingModelError(FileNotFoundError):
    """A model folder named in the parameters does not exist."""


def names_a_folder(model_id: str) -> bool:
    """Whether ``model_id`` is a path, not a hub id (``name`` or ``org/name``)."""
    return (
        model_id.startswith(("/", "./", "../", "~"))
        or model_id.count("/") >= 2
        or os.path.isdir(model_id)
    )


def _section(params: dict[str, Any], dotted: str) -> dict[str, Any]:
    value: Any = params
    for key in dotted.split("."):
        if hasattr(value, "model_dump"):  # a validated pydantic parameter
            value = value.model_dump()
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else {}


def missing_model_folders(
    params: dict[str, Any], node_names: set[str]
) -> list[tuple[str, str]]:
    """``(parameter, folder)`` of every model folder the nodes need that is absent.

    Args:
        params: The run's parameters (plain dicts).
        node_names: The nodes that will run.

    Returns:
        The missing folders, with the parameter that names each.
    """
    missing = []
    for node in sorted(node_names & NEEDS.keys()):
        for section, key, backends in NEEDS[node]:
            config = _section(params, section)
            model_id = config.get(key)
            if config.get("backend") not in backends or not model_id:
                continue
            path = os.path.expanduser(model_id)
            entry = (f"{section}.{key}", model_id)
            if names_a_folder(model_id) and not os.path.isdir(path):
                if entry not in missing:
                    missing.append(entry)
    return missing


def loads_elsewhere(params: dict[str, Any]) -> bool:
    """Whether the models load on a Ray cluster's nodes rather than here."""
    executor = _section(params, "executor")
    return executor.get("kind") == "ray" and bool(
        _section(params, "executor.ray").get("address")
    )


def explain(missing: list[tuple[str, str]]) -> str:
    """What is missing and the command that makes it."""
    lines = []
    for parameter, folder in missing:
        lines.append(f"model folder {folder} ({parameter}) does not exist.")
    folders = [f for _, f in missing]
    if any(os.path.normpath(f).startswith(DEMO_MODELS) for f in folders):
        lines.append(
            "Build the demo's tiny models first: "
            f".venv/bin/action100m tiny-models --out {DEMO_MODELS} "
            "(`make demo` does it too)."
        )
    lines.append(
        "Or download the weights into that folder (e.g. `hf download ORG/NAME "
        "--local-dir FOLDER`), or set the parameter to a hub id, e.g. "
        '--params "captioning.plm.model_id=facebook/Perception-LM-3B".'
    )
    return "\n".join(lines)


class ModelFolderHook:
    """Stops a run whose local model folders are missing, before its first node.

    The check runs as the first node starts (inside the run, so the MLflow run is
    marked FAILED), before any video is read.
    """

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}
        self._nodes: set[str] | None = None

    @hook_impl
    def after_context_created(self, context) -> None:
        self._params = dict(context.params)

    @hook_impl
    def before_pipeline_run(self, pipeline) -> None:
        self._nodes = {node.name for node in pipeline.nodes}

    @hook_impl(tryfirst=True)
    def before_node_run(self) -> None:
        nodes, self._nodes = self._nodes, None
        if nodes:
            missing = missing_model_folders(self._params, nodes)
            if missing and loads_elsewhere(self._params):
                folders = ", ".join(f"{f} ({p})" for p, f in missing)
                logger.warning(
                    "model folders not on this machine: %s; the Ray cluster's "
                    "workers must have them",
                    folders,
                )
            elif missing:
                raise MissingModelError(explain(missing))
