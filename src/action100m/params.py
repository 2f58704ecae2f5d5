"""Typed parameters of every stage (validated by Kedro before any node runs)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestParams(_Params):
    min_duration_s: float = Field(0.5, gt=0)
    max_sidecar_bytes: int = Field(16_000_000, gt=0)


class EmbedderParams(_Params):
    backend: Literal["vjepa2", "color_histogram"] = "vjepa2"
    model_id: str | None = "facebook/vjepa2-vitg-fpc64-384"
    revision: str | None = None
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    window: int = Field(64, ge=1)
    window_stride: int = Field(8, ge=1)
    batch_size: int = Field(4, ge=1)


class TreeParams(_Params):
    min_segment_s: float = Field(0.5, gt=0)
    time_decimals: int | None = Field(2, ge=0)


class SegmentationParams(_Params):
    frame_stride: int = Field(4, ge=1)
    embedder: EmbedderParams = Field(default_factory=EmbedderParams)
    tree: TreeParams = Field(default_factory=TreeParams)
