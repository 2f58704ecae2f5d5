"""The run's record: every setting that made its outputs, in one file.

As each ``kedro run`` starts, :class:`~action100m.runtime.tracking.RunTrackingHook`
logs the resolved configuration to the MLflow run as ``run_config.json`` (where
every run's stays) and, once the first node starts, writes the same document to
the catalog's ``run_config`` (``<output_dir>/run_config.json``, atomically; each
run that does any work replaces it, so the file beside the outputs is the latest
such run's). It holds
every parameter after overrides, nested and flattened (the keys MLflow uses),
each model's id and resolved revision, the Stage 3 prompt template's path and
hash, the Kedro environment and the command's options and runtime parameters,
package versions, the project's git commit and the start time.
"""

from __future__ import annotations

import json
from typing import Any

from action100m.runtime.mlflow_params import flat_params, plain_params

RUN_CONFIG = "run_config"  # the catalog entry
RUN_CONFIG_FILE = "run_config.json"  # its name in the output folder and in MLflow
# What the command chose, from Kedro's run parameters.
COMMAND_KEYS = (
    "pipeline_names",
    "runner",
    "only_missing_outputs",
    "tags",
    "node_names",
    "from_nodes",
    "to_nodes",
    "from_inputs",
    "to_outputs",
    "namespaces",
    "load_versions",
    "runtime_params",
)


def model_roles(identities: dict[str, str]) -> dict[str, dict[str, str]]:
    """``model.<role>.<key>`` entries as ``{role: {key: value}}``."""
    roles: dict[str, dict[str, str]] = {}
    for name, value in identities.items():
        _, role, key = name.split(".", 2)
        roles.setdefault(role, {})[key] = value
    return roles


def run_record(
    params: dict[str, Any],
    run_params: dict[str, Any],
    identities: dict[str, str],
    prompt: dict[str, str],
    versions: dict[str, str],
    git_commit: str | None,
    started_at: str,
    mlflow_run_id: str | None = None,
) -> dict[str, Any]:
    """The record of one run, JSON-ready.

    Args:
        params: The session's parameters (validated: pydantic groups allowed).
        run_params: Kedro's run parameters (environment, command options).
        identities: ``model.<role>.id`` / ``.revision`` of the models used
            (:func:`~action100m.runtime.tracking.model_identities`).
        prompt: ``template`` (path) and ``hash`` of the Stage 3 prompt.
        versions: Package name -> version.
        git_commit: The project's commit, if it is a git checkout.
        started_at: ISO-8601 start time (UTC).
        mlflow_run_id: The MLflow run that holds this run's history.
    """
    command = {key: run_params.get(key) for key in COMMAND_KEYS}
    command["pipeline_names"] = command["pipeline_names"] or ["__default__"]
    # Kedro gives the runner as the text of the object: keep its class.
    runner = str(command["runner"] or "")
    command["runner"] = runner.removeprefix("<").split(" object at ")[0] or None
    record = {
        "started_at": started_at,
        "kedro_env": run_params.get("env") or "base",
        "kedro_session_id": run_params.get("run_id"),
        "mlflow_run_id": mlflow_run_id,
        "command": command,
        "git_commit": git_commit,
        "packages": versions,
        "models": model_roles(identities),
        "prompt": prompt,
        "parameters": plain_params(params),
        "parameters_flat": flat_params(params),
    }
    # Runtime parameters come from the command line as any scalar: keep text.
    return json.loads(json.dumps(record, default=str))
