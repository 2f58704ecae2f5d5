"""Resampling pipeline wiring (paper §5.4)."""

from kedro.pipeline import Node, Pipeline

from .nodes import resample_actions


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=resample_actions,
                inputs=["resampling_input", "params:resampling"],
                outputs=["resampled_actions", "cluster_sizes", "duplicate_stats"],
                name="resample_actions_node",
            )
        ],
        tags="resampling",  # its stage, for MLflow costs and `kedro run --tags`
    )
