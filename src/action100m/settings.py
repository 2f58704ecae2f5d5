"""Kedro project settings."""

from kedro.config import OmegaConfigLoader
from omegaconf.resolvers import oc

from action100m.mlflow_params import FlatParamsMlflowHook
from action100m.run_checks import RunChecksHook
from action100m.tracking import RunTrackingHook

# kedro-mlflow's hook is registered here in its flattening form instead of by
# the plugin itself.
HOOKS = (RunChecksHook(), FlatParamsMlflowHook(), RunTrackingHook())
# (its distribution names itself kedro_mlflow; the other spelling is for older ones)
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow", "kedro-mlflow")

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment overrides single keys of base, not whole sections.
    "merge_strategy": {"parameters": "soft"},
    # ${oc.env:VAR,default} in any config file (e.g. MLFLOW_TRACKING_URI).
    "custom_resolvers": {"oc.env": oc.env},
}
