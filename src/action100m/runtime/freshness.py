"""``kedro run --only-missing-outputs`` that honours what made every output.

Kedro runs a node under this flag when one of its persistent outputs does not
exist, and reads nothing else. Before it decides, ``FreshnessHook`` walks the
pipeline in order and

- for a node writing per-video outputs that carry records of what made them,
  builds the node's lazy work (nothing is computed: each video's work runs only
  when its partition is saved) and tells each such dataset the manifest's videos
  and the fingerprint each one's record must have, so that the dataset "exists"
  only when every video has an output made with the current settings;
- marks every output of a node that will run, and of any node that reads what
  such a node writes, as stale (a release built from recomputed annotations is
  rebuilt too).

The node that runs then computes only the videos that are missing or made
otherwise: the per-video skip of its dataset reuses the rest.
"""

from __future__ import annotations

import logging
from typing import Any

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)


def _dataset(catalog: Any, name: str) -> Any | None:
    return catalog.get(name) if name in catalog else None


def _expect_current(node: Any, catalog: Any) -> None:
    """Tell the node's record-keeping outputs what this run would make."""
    targets = {
        name: dataset
        for name in node.outputs
        if hasattr(dataset := _dataset(catalog, name), "expect")
        and dataset.skip_existing
    }
    if not targets:
        return
    try:  # the project's nodes take their inputs in order
        result = node.func(*[catalog.load(name) for name in node.inputs])
        outputs = dict(zip(node.outputs, result if len(node.outputs) > 1 else [result]))
    except Exception as exc:  # noqa: BLE001 - Kedro decides, and the run reports it
        logger.debug("cannot plan %s ahead: %s", node.name, exc)
        return
    for name, dataset in targets.items():
        work = outputs.get(name)
        if not hasattr(work, "made_by"):
            continue
        dataset.expect(
            {uid: (work.made_by(uid) or {}).get("fingerprint") for uid in work}
        )


def _missing(name: str, catalog: Any) -> bool:
    dataset = _dataset(catalog, name)
    if dataset is None or getattr(dataset, "_EPHEMERAL", False):
        return False
    return not catalog.exists(name)


def plan_reruns(pipeline: Any, catalog: Any) -> list[str]:
    """Prepare the catalog's outputs for Kedro's missing-outputs filter.

    Returns:
        The names of the nodes that will run because an output is missing, made
        otherwise, or built from one that will be recomputed, in order.
    """
    rerun_outputs: set[str] = set()
    nodes = []
    for node in pipeline.nodes:  # topological order
        if not rerun_outputs & set(node.inputs):
            _expect_current(node, catalog)
            if not any(_missing(name, catalog) for name in node.outputs):
                continue
        nodes.append(node.name)
        rerun_outputs.update(node.outputs)
        for name in node.outputs:
            mark = getattr(_dataset(catalog, name), "mark_stale", None)
            if mark is not None:
                mark()
    return nodes


class FreshnessHook:
    """Makes ``--only-missing-outputs`` rerun what the current settings change."""

    @hook_impl(trylast=True)  # after the run checks and the MLflow run's start
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        if not run_params.get("only_missing_outputs"):
            return
        nodes = plan_reruns(pipeline, catalog)
        logger.info(
            "--only-missing-outputs: %d node(s) with outputs missing, made "
            "otherwise or built from those: %s",
            len(nodes),
            ", ".join(nodes) or "none",
        )
