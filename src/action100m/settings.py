"""Kedro project settings."""

from kedro.config import OmegaConfigLoader
from omegaconf.resolvers import oc

from action100m.progress import ProgressHook
from action100m.tracking import RunTrackingHook

HOOKS = (RunTrackingHook(), ProgressHook())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment overrides single keys of base, not whole sections.
    "merge_strategy": {"parameters": "soft"},
    # ${oc.env:VAR,default} in any config file (e.g. MLFLOW_TRACKING_URI).
    "custom_resolvers": {"oc.env": oc.env},
}
