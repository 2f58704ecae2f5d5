"""Checks made before any node runs: nothing silently skipped or overwritten.

``RunChecksHook`` (registered in ``settings.py``) stops a run before any work,
and before its MLflow run opens, when

- a stage's upstream output is missing (e.g. ``--pipeline segmentation`` on an
  output folder where ``ingest`` never ran): the message names the dataset, its
  path and the pipeline that makes it;
- the run would write a file it also reads (e.g. ``reannotate`` pointed at its
  own output), unless ``allow_overwrite: true``;
- the runner is ``ParallelRunner``: the per-video work runs lazily inside the
  partitioned saves, whose results and timings do not cross process boundaries.
"""

from __future__ import annotations

import importlib
from typing import Any

from kedro.framework.hooks import hook_impl


class RunCheckError(RuntimeError):
    """The run cannot start as asked; the message says what to do."""


def _path(dataset: Any) -> str | None:
    try:
        described = dataset._describe()  # noqa: SLF001 - kedro's own describe
    except Exception:  # noqa: BLE001 - a dataset without a path
        return None
    path = described.get("filepath") or described.get("path")
    return None if path is None else str(path).removeprefix("file://")


def _producers(name: str) -> list[str]:
    """The project's pipelines that write ``name`` (all of them, not only the
    ones this run loaded)."""
    from action100m.pipeline_registry import STAGES

    found = []
    for stage in (*STAGES, "reannotate"):
        module = importlib.import_module(f"action100m.pipelines.{stage}")
        if name in module.create_pipeline().all_outputs():
            found.append(stage)
    return found


def _present(catalog: Any, name: str) -> bool:
    dataset = catalog.get(name)
    if hasattr(dataset, "was_saved"):
        return dataset.was_saved()
    return catalog.exists(name)


class RunChecksHook:
    """Refuses runs that would do nothing, overwrite inputs, or mis-time stages."""

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        runner = str(run_params.get("runner") or "")
        if "ParallelRunner" in runner:
            raise RunCheckError(
                "ParallelRunner is not supported: each stage's per-video work runs "
                "while its outputs are saved, and neither results nor timings come "
                "back from its processes. Use the default SequentialRunner (or "
                "ThreadRunner), and executor.kind=ray to spread videos over "
                "processes and machines."
            )
        inputs = {n for n in pipeline.inputs() if not n.startswith("params:")}
        inputs.discard("parameters")
        for name in sorted(inputs):
            makers = _producers(name)
            if makers and not _present(catalog, name):
                where = _path(catalog.get(name)) or "memory"
                raise RunCheckError(
                    f"dataset '{name}' ({where}) does not exist yet, so this run "
                    f"would do nothing: run `kedro run --pipeline {makers[0]}` "
                    "first with the same output_dir"
                )
        read = {_path(catalog.get(n)): n for n in inputs if n in catalog}
        try:
            allowed = bool(catalog.load("params:allow_overwrite"))
        except Exception:  # noqa: BLE001 - not set
            allowed = False
        for name in sorted(pipeline.all_outputs()):
            path = _path(catalog.get(name)) if name in catalog else None
            if path is not None and path in read and not allowed:
                raise RunCheckError(
                    f"'{name}' would overwrite '{read[path]}' ({path}), which this "
                    "run reads: write it elsewhere (another output_dir), or set "
                    "--params allow_overwrite=true to replace it"
                )
