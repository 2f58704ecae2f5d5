"""kedro-viz sees every registered pipeline with named nodes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_viz_build_contains_every_pipeline():
    from kedro.framework.project import configure_project, pipelines

    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    kedro = str(Path(sys.executable).with_name("kedro"))
    subprocess.run(
        [kedro, "viz", "build"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    main = json.loads((ROOT / "build" / "api" / "main").read_text())
    configure_project("action100m")
    registered = set(pipelines.keys())
    assert {p["id"] for p in main["pipelines"]} == registered
    for name in registered:
        expected = {node.name for node in pipelines[name].nodes}
        built = json.loads((ROOT / "build" / "api" / "pipelines" / name).read_text())
        assert {n["name"] for n in built["nodes"] if n["type"] == "task"} == expected
    default = {n["name"] for n in main["nodes"] if n["type"] == "task"}
    assert default == {node.name for node in pipelines["__default__"].nodes}
