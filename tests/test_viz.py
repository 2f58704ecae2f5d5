"""kedro-viz sees every registered pipeline with named nodes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_viz_build_contains_every_pipeline(tmp_path):
    from kedro.framework.project import configure_project, pipelines

    # `kedro viz build` writes build/ into the folder it runs in: run it in a
    # copy of the project's settings, so that the repository stays as it was.
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    (tmp_path / "src").mkdir()  # the package itself is imported as installed
    had_build = (ROOT / "build").exists()
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    kedro = str(Path(sys.executable).with_name("kedro"))
    subprocess.run(
        [kedro, "viz", "build"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert (ROOT / "build").exists() == had_build
    main = json.loads((tmp_path / "build" / "api" / "main").read_text())
    configure_project("action100m")
    registered = set(pipelines.keys())
    assert {p["id"] for p in main["pipelines"]} == registered
    for name in registered:
        expected = {node.name for node in pipelines[name].nodes}
        built = json.loads(
            (tmp_path / "build" / "api" / "pipelines" / name).read_text()
        )
        assert {n["name"] for n in built["nodes"] if n["type"] == "task"} == expected
    default = {n["name"] for n in main["nodes"] if n["type"] == "task"}
    assert default == {node.name for node in pipelines["__default__"].nodes}
