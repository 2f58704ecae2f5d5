"""Segmentation pipeline wiring (paper Stage 1)."""

from kedro.pipeline import Node, Pipeline

from .nodes import build_segment_trees, embed_frames


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=embed_frames,
                inputs=[
                    "video_manifest",
                    "videos",
                    "params:segmentation",
                    "params:executor",
                ],
                outputs="intermediate_frame_embeddings",
                name="embed_frames_node",
            ),
            Node(
                func=build_segment_trees,
                inputs=[
                    "intermediate_frame_embeddings",
                    "video_manifest",
                    "params:segmentation",
                    "params:executor",
                ],
                outputs="intermediate_segment_trees",
                name="build_segment_trees_node",
            ),
        ],
        tags="segmentation",  # its stage, for MLflow costs and `kedro run --tags`
    )
