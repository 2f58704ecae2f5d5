"""The project's catalog as Kedro loads it: explicit entries and dataset factories."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader
from kedro.framework.project import configure_project, find_pipelines
from kedro.io import DataCatalog

from action100m import settings
from action100m.datasets import VideoPartitionsDataset

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "action100m"


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("out")


@pytest.fixture(scope="module")
def catalog(out) -> DataCatalog:
    loader = OmegaConfigLoader(
        conf_source=str(ROOT / "conf"),
        runtime_params={"output_dir": str(out), "videos_dir": str(out / "videos")},
        **settings.CONFIG_LOADER_ARGS,
    )
    return DataCatalog.from_config(loader["catalog"], loader["credentials"])


@pytest.fixture(scope="module")
def pipelines():
    configure_project(PACKAGE)
    return find_pipelines(raise_errors=True)


def used_names(pipelines) -> set[str]:
    return {
        name
        for pipeline in pipelines.values()
        for name in pipeline.datasets()
        if not name.startswith("params:") and name != "parameters"
    }


def produced_names(pipelines) -> set[str]:
    return {name for p in pipelines.values() for name in p.all_outputs()}


def test_every_dataset_of_every_pipeline_is_declared_or_made_by_a_factory(
    catalog, pipelines
):
    resolver = catalog.config_resolver
    undeclared = {
        name
        for name in used_names(pipelines)
        if name not in resolver.config and resolver.match_dataset_pattern(name) is None
    }
    # Nothing falls through to Kedro's in-memory default: every dataset persists.
    assert undeclared == set()


def test_a_name_from_a_factory_is_always_written_by_some_node(catalog, pipelines):
    # A misspelt input would otherwise resolve to an empty folder and skip
    # every video without a word.
    resolver = catalog.config_resolver
    from_factory = {
        name for name in used_names(pipelines) if name not in resolver.config
    }
    assert from_factory, "the per-video intermediates come from the factories"
    assert from_factory <= produced_names(pipelines)


def test_intermediates_resolve_to_one_folder_per_name_under_the_output_dir(
    catalog, out
):
    for name, fmt in [
        ("intermediate_segment_trees", "json"),
        ("intermediate_captions", "json"),
        ("intermediate_annotations", "json"),
        ("intermediate_reannotate_trees", "json"),
        ("intermediate_frame_embeddings", "npz"),  # the more specific pattern
    ]:
        dataset = catalog.get(name)
        assert isinstance(dataset, VideoPartitionsDataset)
        folder = name.removeprefix("intermediate_")
        assert Path(str(dataset.location).removeprefix("file://")) == (
            out / "intermediate" / folder
        )
        assert dataset.format == fmt, name


def test_release_files_per_video_keep_what_their_record_still_matches(catalog):
    # Rebuilt only when what made them changed (tests/pipelines/export).
    for name in ("release_trees", "viewer_pages", "timeline_images"):
        dataset = catalog.get(name)
        assert isinstance(dataset, VideoPartitionsDataset)
        assert dataset.skip_existing is True, name


def test_no_file_of_the_catalog_lies_in_a_per_video_folder(catalog, pipelines):
    # A video's uid names its file there: a video called `index` must not be able
    # to overwrite (or be overwritten by) the run's index page.
    folders = {
        name: Path(str(catalog.get(name).location))
        for name in used_names(pipelines)
        if isinstance(catalog.get(name), VideoPartitionsDataset)
    }
    files = {
        name: Path(entry["filepath"])
        for name, entry in catalog.config_resolver.config.items()
        if "filepath" in entry
    }
    assert "run_index_page" in files and "viewer_pages" in folders
    inside = {
        (file_name, folder_name)
        for file_name, path in files.items()
        for folder_name, folder in folders.items()
        if folder in path.parents
    }
    assert inside == set()
