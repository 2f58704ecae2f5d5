"""Aggregation pipeline wiring (paper Stage 3)."""

from kedro.pipeline import Node, Pipeline

from .nodes import annotate_segment_trees


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=annotate_segment_trees,
                inputs=[
                    "intermediate_segment_trees",
                    "intermediate_captions",
                    "video_manifest",
                    "params:aggregation",
                    "params:executor",
                ],
                outputs="intermediate_annotations",
                name="annotate_segment_trees_node",
            )
        ],
        tags="aggregation",  # its stage, for MLflow costs and `kedro run --tags`
    )
