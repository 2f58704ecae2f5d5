"""Reannotate pipeline wiring: Stage 3 on an existing release-schema parquet."""

from kedro.pipeline import Node, Pipeline

from .nodes import annotate_release_trees, merge_reannotated, split_release


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=split_release,
                inputs=["release_input", "params:executor"],
                outputs="intermediate_reannotate_trees",
                name="split_release_node",
            ),
            Node(
                func=annotate_release_trees,
                inputs=[
                    "intermediate_reannotate_trees",
                    "params:aggregation",
                    "params:executor",
                ],
                outputs="intermediate_reannotate_annotations",
                name="annotate_release_trees_node",
            ),
            Node(
                func=merge_reannotated,
                inputs=[
                    "release_input",
                    "intermediate_reannotate_trees",
                    "intermediate_reannotate_annotations",
                ],
                outputs=["reannotated_parquet", "reannotate_errors"],
                name="merge_reannotated_node",
            ),
        ],
        tags="reannotate",  # its stage, for MLflow costs and `kedro run --tags`
    )
