"""Export pipeline wiring."""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    collect_errors,
    export_video_trees,
    fiftyone_samples,
    release_shards,
    render_views,
    write_dataset_card,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=export_video_trees,
                inputs=[
                    "intermediate_segment_trees",
                    "intermediate_captions",
                    "intermediate_annotations",
                    "video_manifest",
                ],
                outputs="release_trees",
                name="export_video_trees_node",
            ),
            Node(
                func=release_shards,
                inputs=["release_trees", "video_manifest", "params:export"],
                outputs="release_parquet",
                name="write_release_shards_node",
            ),
            Node(
                func=render_views,
                inputs=["release_trees", "video_manifest", "params:output_dir"],
                outputs=["viewer_pages", "timeline_images"],
                name="render_views_node",
            ),
            Node(
                func=fiftyone_samples,
                inputs=["release_trees", "video_manifest"],
                outputs="fiftyone_dataset",
                name="export_fiftyone_dataset_node",
            ),
            Node(
                func=write_dataset_card,
                inputs=[
                    "release_parquet",
                    "params:segmentation",
                    "params:captioning",
                    "params:aggregation",
                    "params:export",
                ],
                outputs=["dataset_card", "release_card"],
                name="write_dataset_card_node",
            ),
            Node(
                func=collect_errors,
                inputs=[
                    "release_trees",
                    "intermediate_captions",
                    "intermediate_annotations",
                    "video_manifest",
                    "ingest_errors",
                ],
                outputs="errors_table",
                name="collect_errors_node",
            ),
        ],
        tags="export",  # its stage, for MLflow costs and `kedro run --tags`
    )
