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
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from action100m.core.params import changes_results


def digest(value: Any) -> str:
    """A short, stable hash of a JSON-able value."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def result_settings(params: BaseModel, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The fields of ``params`` that change results, nested sections included.

    Which fields count is declared once, on the fields themselves
    (:func:`~action100m.core.params.setting` or
    :func:`~action100m.core.params.tuning`); ``exclude`` drops top-level fields
    (e.g. a section fingerprinted by another stage).
    """
    kept: dict[str, Any] = {}
    for name, field in type(params).model_fields.items():
        if name in exclude:
            continue
        value = getattr(params, name)
        if isinstance(value, BaseModel):
            kept[name] = result_settings(value)
        elif changes_results(field):
            kept[name] = value
    return kept


def stage_identity(
    stage: str,
    params: BaseModel,
    section: str | None = None,
    prompt_hash: str | None = None,
    exclude: Iterable[str] = (),
) -> dict[str, Any]:
    """What makes every output of ``stage``, apart from its inputs.

    Args:
        stage: The stage's name.
        params: Its typed parameters.
        section: The top-level parameter key of ``params`` (``segmentation``,
            ``captioning``, ``aggregation``), to resolve the models it names.
        prompt_hash: The hash of the prompt templates the stage uses.
        exclude: Top-level fields of ``params`` that this stage does not use.

    Returns:
        ``stage``, ``settings``, ``models`` (id and revision per role) and
        ``prompt``.
    """
    from action100m.runtime.tracking import model_identities

    dumped = params.model_dump(exclude=set(exclude))
    models = model_identities({section: dumped}) if section else {}
    return {
        "stage": stage,
        "settings": result_settings(params, exclude),
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
