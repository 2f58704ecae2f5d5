"""Captioning pipeline wiring (paper Stage 2)."""

from kedro.pipeline import Node, Pipeline

from .nodes import caption_trees


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=caption_trees,
                inputs=[
                    "intermediate_segment_trees",
                    "video_manifest",
                    "videos",
                    "params:captioning",
                    "params:executor",
                ],
                outputs="intermediate_captions",
                name="caption_trees_node",
            )
        ],
        tags="captioning",  # its stage, for MLflow costs and `kedro run --tags`
    )
