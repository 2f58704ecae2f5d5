"""Every parameter in MLflow as its own flattened key (``captioning.plm.batch_size``).

Kedro validates each ``params:`` input into its pydantic model before the node
runs, so kedro-mlflow's hook receives objects it cannot flatten and logs each
group as one truncated string. :class:`FlatParamsMlflowHook` hands it the same
parameters as plain dictionaries, which its ``flatten`` setting then splits into
one key per leaf; everything else is kedro-mlflow's own behaviour.
"""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl
from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook
from pydantic import BaseModel


def plain_params(inputs: dict[str, Any]) -> dict[str, Any]:
    """``inputs`` with every pydantic parameter object as a JSON-ready dict."""
    return {
        key: value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        for key, value in inputs.items()
    }


class FlatParamsMlflowHook(MlflowHook):
    """kedro-mlflow's hook, given parameters it can flatten."""

    @hook_impl
    def before_node_run(self, node, catalog, inputs, is_async) -> None:
        super().before_node_run(node, catalog, plain_params(inputs), is_async)
