"""Evaluation pipeline wiring."""

from kedro.pipeline import Node, Pipeline

from .nodes import evaluate_run


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=evaluate_run,
                inputs=[
                    "release_parquet",
                    "intermediate_annotations",
                    "ground_truth_cuts",
                    "video_manifest",
                    "errors_table",
                    "params:segmentation",
                ],
                outputs=[
                    "quality_metrics",
                    "run_summary",
                    "run_index_page",
                    "run_index_pages",
                ],
                name="evaluate_run_node",
            )
        ],
        tags="evaluation",  # its stage, for MLflow costs and `kedro run --tags`
    )
