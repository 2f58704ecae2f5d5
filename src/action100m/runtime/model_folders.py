"""Local model folders the run will load: checked before any node runs.

A ``model_id`` that names a folder (``data/06_models/perception_lm``, ``/models/x``,
``./x``) and does not exist would otherwise reach the Hugging Face hub as a repo
id and fail, minutes later, with a validation error about its characters.
``ModelFolderHook`` stops the run as it starts instead, naming the folder, the
parameter and the command that builds or fetches it.

With ``executor.kind: ray`` and an ``executor.ray.address`` (a cluster this
machine joins), the models load on the cluster's nodes, whose disks this machine
cannot see: the hook joins the cluster and runs one small task on every alive
node, which looks for the folders there; a folder missing on any node stops the
run, naming the node. This machine's disk is not checked then.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from kedro.framework.hooks import hook_impl

from action100m.runtime.executor import init_ray

logger = logging.getLogger(__name__)
#: How long the nodes of a Ray cluster have to answer the folder check.
NODE_CHECK_TIMEOUT_S = 120.0

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


def needed_model_folders(
    params: dict[str, Any], node_names: set[str]
) -> list[tuple[str, str]]:
    """``(parameter, folder)`` of every local model folder the nodes load.

    A hub id (``name`` or ``org/name``) is no folder and is left out.

    Args:
        params: The run's parameters (plain dicts).
        node_names: The nodes that will run.
    """
    needed = []
    for node in sorted(node_names & NEEDS.keys()):
        for section, key, backends in NEEDS[node]:
            config = _section(params, section)
            model_id = config.get(key)
            if config.get("backend") not in backends or not model_id:
                continue
            entry = (f"{section}.{key}", model_id)
            if names_a_folder(model_id) and entry not in needed:
                needed.append(entry)
    return needed


def absent_folders(folders: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Those of ``(parameter, folder)`` whose folder does not exist here."""
    return [
        (parameter, folder)
        for parameter, folder in folders
        if not os.path.isdir(os.path.expanduser(folder))
    ]


def missing_model_folders(
    params: dict[str, Any], node_names: set[str]
) -> list[tuple[str, str]]:
    """``(parameter, folder)`` of every model folder the nodes need that is absent
    on this machine."""
    return absent_folders(needed_model_folders(params, node_names))


def _check_this_node(folders: list[tuple[str, str]]) -> tuple[str, list]:
    """On a Ray node: where relative folders are looked for, and those absent."""
    return os.getcwd(), absent_folders(folders)


def missing_on_nodes(
    folders: list[tuple[str, str]], timeout_s: float = NODE_CHECK_TIMEOUT_S
) -> list[str]:
    """One line per folder absent on a node of the joined Ray cluster.

    One task per alive node, pinned there (no CPU asked, so busy nodes answer
    too); a node that does not answer within ``timeout_s`` is a line too.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    check = ray.remote(num_cpus=0, max_retries=0)(_check_this_node)
    nodes = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}
    refs = {
        check.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
        ).remote(folders): node
        for node in nodes
    }
    ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    lines = []
    for ref in ready:
        where = f"node {refs[ref]} ({nodes[refs[ref]]})"
        try:
            cwd, absent = ray.get(ref)
        except ray.exceptions.RayError as exc:
            lines.append(f"{where}: the model folder check failed: {exc}")
            continue
        for parameter, folder in absent:
            relative = not os.path.isabs(os.path.expanduser(folder))
            lines.append(
                f"{where}: model folder {folder} ({parameter}) does not exist"
                + (f" (looked for in {cwd})" if relative else "")
            )
    for ref in late:
        lines.append(
            f"node {refs[ref]} ({nodes[refs[ref]]}): no answer to the model folder "
            f"check within {timeout_s:.0f} s"
        )
    if not lines:
        logger.info(
            "model folders %s found on all %d nodes of the Ray cluster",
            ", ".join(folder for _, folder in folders),
            len(nodes),
        )
    return lines


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
    """Stops a run whose local model folders are missing (here, or on a node of
    the Ray cluster it joins), before its first node.

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
        if not nodes:
            return
        if not loads_elsewhere(self._params):
            missing = missing_model_folders(self._params, nodes)
            if missing:
                raise MissingModelError(explain(missing))
            return
        needed = needed_model_folders(self._params, nodes)
        if needed:
            init_ray(_section(self._params, "executor.ray").get("address"))
            missing_there = missing_on_nodes(needed)
            if missing_there:
                raise MissingModelError(
                    "\n".join(
                        [
                            *missing_there,
                            "Each node of the Ray cluster loads the models from its "
                            "own disk: put the folder on every node at the same path "
                            "(e.g. `hf download ORG/NAME --local-dir FOLDER` there), "
                            "or set the parameter to a hub id.",
                        ]
                    )
                )
