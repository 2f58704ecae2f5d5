"""Long benchmark videos made from the footage the project already generates."""

from __future__ import annotations

import os

from action100m.demo.footage import CLIPS, PHOTOS, Shot, write_cut_video


def long_video(path: str, seconds: float, size=(854, 480), fps=25, shot_s=30.0) -> str:
    """A video of ``seconds`` with a hard cut every ``shot_s`` (cached on disk)."""
    if os.path.exists(path):
        return path
    sources = list(CLIPS) + list(PHOTOS)
    shots, total, i = [], 0.0, 0
    while total < seconds:
        length = min(shot_s, seconds - total)
        shots.append(Shot(sources[i % len(sources)], length))
        total += length
        i += 1
    tmp = path + ".part.mp4"
    write_cut_video(tmp, shots, fps=fps, size=size)
    os.replace(tmp, path)
    return path
