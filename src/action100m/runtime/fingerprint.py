"""What made a per-video output: settings, models, prompt and upstream outputs.

Every per-video output of a stage is written with a record of what made it: the
stage's parameters that change results (not batch sizes, devices or
concurrency), each model's id and resolved revision, the prompt template hash,
and the fingerprints of the upstream outputs it was computed from. A rerun reuses
an output only when this record's fingerprint matches the one the current
settings would give; anything else (other settings, a recomputed upstream, an old
output without a record) is recomputed, or with ``executor.on_changed: stop``
stops the run and names what differs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

# Parameters that change how fast or where work runs, never what it produces.
OPERATIONAL = frozenset(
    {
        "batch_size",
        "num_gpus",
        "device",
        "max_concurrency",
        "timeout_s",
        "max_attempts",
        "backoff_s",
        "cache_dir",
        "api_key_env",
        "base_url",
        "videos_in_flight",
    }
)


def digest(value: Any) -> str:
    """A short, stable hash of a JSON-able value."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def result_settings(params: Any) -> Any:
    """``params`` (a pydantic model or plain data) without operational keys."""
    if hasattr(params, "model_dump"):
        params = params.model_dump()
    if isinstance(params, dict):
        return {
            key: result_settings(value)
            for key, value in params.items()
            if key not in OPERATIONAL
        }
    return params


def stage_identity(
    stage: str, params: Any, section: str | None = None, prompt_hash: str | None = None
) -> dict[str, Any]:
    """What makes every output of ``stage``, apart from its inputs.

    Args:
        stage: The stage's name.
        params: Its typed parameters.
        section: The top-level parameter key of ``params`` (``segmentation``,
            ``captioning``, ``aggregation``), to resolve the models it names.
        prompt_hash: The hash of the prompt templates the stage uses.

    Returns:
        ``stage``, ``settings``, ``models`` (id and revision per role) and
        ``prompt``.
    """
    from action100m.runtime.tracking import model_identities

    dumped = params.model_dump() if hasattr(params, "model_dump") else params
    models = model_identities({section: dumped}) if section else {}
    return {
        "stage": stage,
        "settings": result_settings(params),
        "models": models,
        "prompt": prompt_hash,
    }


def made_by(identity: dict[str, Any], upstream: dict[str, Any]) -> dict[str, Any]:
    """The record of one output: the stage's identity, its inputs and their hash."""
    record = {**identity, "upstream": upstream}
    return {**record, "fingerprint": digest(record)}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def differences(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """Readable ``key: old -> new`` lines between two records."""
    if not old:
        return ["no record of what made it (an output from an older version)"]
    before, after = _flatten(old), _flatten(new)
    keys = sorted((set(before) | set(after)) - {"fingerprint"})
    return [
        f"{key}: {before.get(key)!r} -> {after.get(key)!r}"
        for key in keys
        if before.get(key) != after.get(key)
    ]
