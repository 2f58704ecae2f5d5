"""Kedro project settings."""

from kedro.config import OmegaConfigLoader
from omegaconf.resolvers import oc

from action100m.runtime.freshness import FreshnessHook
from action100m.runtime.mlflow_params import FlatParamsMlflowHook
from action100m.runtime.model_folders import ModelFolderHook
from action100m.runtime.progress import ProgressHook
from action100m.runtime.run_checks import RunChecksHook
from action100m.runtime.tracking import RunTrackingHook, artifact_location

# kedro-mlflow's hook is registered here in its flattening form instead of by
# the plugin itself.
HOOKS = (
    RunChecksHook(),
    FreshnessHook(),
    ModelFolderHook(),
    FlatParamsMlflowHook(),
    RunTrackingHook(),
    ProgressHook(),
)
# kedro-viz's run hooks write .viz/ into the project on every run; `kedro viz`
# reads the pipelines and catalog without them. (Distributions name themselves
# with either spelling.)
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow", "kedro-mlflow", "kedro-viz", "kedro_viz")

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment overrides single keys of base, not whole sections.
    "merge_strategy": {"parameters": "soft"},
    # ${oc.env:VAR,default} in any config file (e.g. MLFLOW_TRACKING_URI).
    "custom_resolvers": {
        "oc.env": oc.env,
        # mlflow.yml: a new experiment's artifacts go beside its tracking store.
        "mlflow_artifact_location": artifact_location,
    },
}
