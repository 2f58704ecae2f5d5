"""Every parameter in MLflow as its own flattened key (``captioning.plm.batch_size``).

kedro-mlflow logs the parameters of each node as the node starts, so a run that
skips nodes (``kedro run --only-missing-outputs``, ``--from-nodes``) would log
only those of the nodes it ran, and Kedro hands its hook pydantic objects that it
logs as one truncated string per group. :class:`FlatParamsMlflowHook` logs the
whole validated parameter set of the session once, as the run starts, as plain
dictionaries split into one key per leaf (the keys a node's ``params:`` inputs
give); everything else is kedro-mlflow's own behaviour.
"""

from __future__ import annotations

from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook
from kedro_mlflow.framework.hooks.utils import _flatten_dict
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH
from pydantic import BaseModel

# Kedro's catalog entry holding every parameter of the session.
PARAMETERS = "parameters"


def plain_params(inputs: dict[str, Any]) -> dict[str, Any]:
    """``inputs`` with every pydantic parameter object as a JSON-ready dict."""
    return {
        key: value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        for key, value in inputs.items()
    }


def flat_params(params: dict[str, Any], sep: str = ".") -> dict[str, Any]:
    """Every leaf of ``params`` under its dotted key (``captioning.plm.batch_size``)."""
    return _flatten_dict(plain_params(params), recursive=True, sep=sep)


def session_params(catalog: Any) -> dict[str, Any]:
    """The session's parameters, validated (pydantic objects for typed groups)."""
    return catalog.load(PARAMETERS) if PARAMETERS in catalog else {}


class FlatParamsMlflowHook(MlflowHook):
    """kedro-mlflow's hook, logging every parameter at the start of the run."""

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        super().before_pipeline_run(run_params, pipeline, catalog)
        if not self._is_mlflow_enabled:
            return
        params = plain_params(session_params(catalog))
        if self.flatten:
            params = _flatten_dict(params, recursive=self.recursive, sep=self.sep)
        params = {self.sanitize_param_name(k): v for k, v in params.items()}
        fits = {k: v for k, v in params.items() if len(str(v)) <= MAX_PARAM_VAL_LENGTH}
        mlflow.log_params(fits)  # in batches, not one request per key
        for key in params.keys() - fits.keys():
            self._log_param(key, params[key])  # mlflow.yml's long_params_strategy

    @hook_impl
    def before_node_run(self, node, catalog, inputs, is_async) -> None:
        # Reopens the run in this thread; the parameters are logged already.
        super().before_node_run(node, catalog, {}, is_async)
