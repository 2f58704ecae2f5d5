"""Project pipelines."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

# Stage order of the default run.
STAGES = (
    "ingest",
    "segmentation",
    "captioning",
    "aggregation",
    "export",
    "evaluation",
)


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects; ``__default__`` runs
        every stage in order.
    """
    pipelines = find_pipelines(raise_errors=True)
    # `kedro run --pipeline NAME` discovers only the pipelines it asks for.
    if all(name in pipelines for name in STAGES):
        pipelines["__default__"] = sum(
            (pipelines[name] for name in STAGES), start=Pipeline([])
        )
    return pipelines
