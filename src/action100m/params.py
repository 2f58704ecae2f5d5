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


class CaptionerParams(_Params):
    backend: Literal["transformers", "openai"] = "transformers"
    model_id: str
    revision: str | None = None
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    batch_size: int = Field(4, ge=1)
    max_new_tokens: int = Field(1024, ge=1)
    do_sample: bool = False
    temperature: float = Field(0.0, ge=0)
    seed: int = 0
    # openai backend
    base_url: str = "http://localhost:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = Field(16, ge=1)
    timeout_s: float = Field(120.0, gt=0)
    max_attempts: int = Field(4, ge=1)


class PLMParams(CaptionerParams):
    model_id: str = "facebook/Perception-LM-3B"
    num_frames: int = Field(32, ge=1)
    frame_size: int = Field(320, ge=16)
    caption_prompt: str
    action_prompt: str


class LlamaParams(CaptionerParams):
    model_id: str = "meta-llama/Llama-3.2-11B-Vision-Instruct"
    frame_short_side: int | None = Field(560, ge=16)
    prompt: str


class CaptioningParams(_Params):
    plm: PLMParams
    llama: LlamaParams
