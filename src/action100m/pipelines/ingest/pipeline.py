"""Ingest pipeline wiring."""

from kedro.pipeline import Node, Pipeline

from .nodes import probe_videos


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=probe_videos,
                inputs=["videos", "params:ingest"],
                outputs=["video_manifest", "ingest_errors"],
                name="probe_videos_node",
            )
        ],
        tags="ingest",  # its stage, for MLflow costs and `kedro run --tags`
    )
