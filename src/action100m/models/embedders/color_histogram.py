"""``ColorHistogramEmbedder``: a classical per-frame descriptor for CPU runs.

Each frame becomes a joint HSV histogram of the whole frame plus hue/value
histograms of a spatial grid, Hellinger-mapped (square root) and L2-normalised.
Shot changes move it far; camera motion within a shot moves it little.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from action100m.models.embedders.base import Embedder


def rgb_to_hsv(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue, saturation, value in [0, 1) for uint8 RGB frames of any leading shape."""
    rgb = frames.astype(np.float32) / 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value = rgb.max(axis=-1)
    chroma = value - rgb.min(axis=-1)
    safe = np.where(chroma > 0, chroma, 1.0)
    hue = np.where(
        value == r,
        ((g - b) / safe) % 6.0,
        np.where(value == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
    )
    hue = np.where(chroma > 0, hue / 6.0, 0.0) % 1.0
    saturation = np.where(value > 0, chroma / np.where(value > 0, value, 1.0), 0.0)
    return hue, saturation, value


class ColorHistogramEmbedder(Embedder):
    """Per-frame HSV histograms (global joint + spatial grid).

    Args:
        bins: Bins of hue, saturation and value of the global joint histogram.
        grid: The frame is split into ``grid x grid`` cells.
        cell_bins: Hue and value bins of each cell's histogram.
        short_side: Frames are decoded with this shorter side.
        window: Frames per window (the descriptor itself is per frame).
        window_stride: Frames between window starts.
    """

    def __init__(
        self,
        bins: tuple[int, int, int] = (8, 4, 4),
        grid: int = 2,
        cell_bins: tuple[int, int] = (8, 4),
        short_side: int = 64,
        window: int = 1,
        window_stride: int = 1,
    ) -> None:
        super().__init__()
        self.window, self.window_stride = window, window_stride
        self.bins = bins
        self.grid = grid
        self.cell_bins = cell_bins
        self.short_side = short_side

    @property
    def dim(self) -> int:
        return int(np.prod(self.bins)) + self.grid**2 * int(np.prod(self.cell_bins))

    def preprocess(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        count, height, width = frames.shape[:3]
        hue, sat, val = rgb_to_hsv(frames)

        def quantise(channel: np.ndarray, n: int) -> np.ndarray:
            return np.minimum((channel * n).astype(np.int64), n - 1)

        hb, sb, vb = self.bins
        joint = (quantise(hue, hb) * sb + quantise(sat, sb)) * vb + quantise(val, vb)
        joint = joint.reshape(count, -1) + np.arange(count)[:, None] * (hb * sb * vb)
        global_hist = np.bincount(joint.ravel(), minlength=count * hb * sb * vb)
        global_hist = global_hist.reshape(count, -1).astype(np.float32)

        ch, cv = self.cell_bins
        rows = np.minimum(np.arange(height) * self.grid // height, self.grid - 1)
        cols = np.minimum(np.arange(width) * self.grid // width, self.grid - 1)
        cell = rows[:, None] * self.grid + cols[None, :]
        per_cell = ch * cv
        code = quantise(hue, ch) * cv + quantise(val, cv) + cell[None] * per_cell
        n_codes = self.grid**2 * per_cell
        code = code.reshape(count, -1) + np.arange(count)[:, None] * n_codes
        cell_hist = np.bincount(code.ravel(), minlength=count * n_codes)
        cell_hist = cell_hist.reshape(count, self.grid**2, per_cell).astype(np.float32)

        global_hist /= max(1, height * width)
        cell_hist /= np.maximum(cell_hist.sum(axis=2, keepdims=True), 1.0)
        features = np.concatenate(
            [global_hist, cell_hist.reshape(count, -1) / self.grid], axis=1
        )
        features = np.sqrt(features)
        features /= np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        return features

    def stack(self, windows: list[list[Any]]) -> np.ndarray:
        return np.asarray(windows, dtype=np.float32)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        # The descriptor is per frame: a window of w frames gives w time steps.
        batch = np.asarray(batch, dtype=np.float32)
        self.work.add(calls=1, frames=batch.shape[0] * batch.shape[1])
        return batch

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "color_histogram",
            "bins": list(self.bins),
            "grid": self.grid,
            "cell_bins": list(self.cell_bins),
            "short_side": self.short_side,
        }
