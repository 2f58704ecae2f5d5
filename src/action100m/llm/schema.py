"""The five annotation fields of Stage 3, their JSON schema and strict parsing."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from action100m.jsontext import JSONObjectError, parse_json_object

NOT_APPLICABLE = "N/A"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Summary(_Strict):
    brief: str = Field(min_length=1, description="One sentence.")
    detailed: str = Field(
        min_length=1, description="Dense, chronological description, no timestamps."
    )


class Action(_Strict):
    brief: str = Field(
        min_length=1, description='Short verb phrase, no -ing form, or "N/A".'
    )
    detailed: str = Field(
        min_length=1, description='One imperative sentence, or "N/A".'
    )
    actor: str = Field(
        min_length=1, description='Who performs it (noun phrase), or "N/A".'
    )


class GptAnnotation(_Strict):
    """``gpt`` of a release node: ``summary.{brief,detailed}``, ``action.{...}``."""

    summary: Summary
    action: Action


class AnnotationError(ValueError):
    """An answer that is not a valid annotation (the reason is specific)."""


def annotation_json_schema() -> dict[str, Any]:
    """JSON schema of the answer, closed (no extra keys), every field required."""
    schema = GptAnnotation.model_json_schema()
    for definition in [schema, *schema.get("$defs", {}).values()]:
        definition["additionalProperties"] = False
        definition["required"] = list(definition.get("properties", {}))
    return schema


def example_answer() -> str:
    """The response structure shown to the model."""
    return json.dumps(
        {
            "summary": {"brief": "<one sentence>", "detailed": "<dense description>"},
            "action": {
                "brief": "<short verb phrase or N/A>",
                "detailed": "<one imperative sentence or N/A>",
                "actor": "<noun phrase or N/A>",
            },
        },
        indent=2,
    )


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def parse_annotation(text: str | None) -> GptAnnotation:
    """Parse and validate one answer.

    Args:
        text: The model's message content (a JSON object, optionally fenced).

    Returns:
        The validated annotation.

    Raises:
        AnnotationError: Empty, not JSON, not an object, or fields missing/empty.
    """
    if not text or not text.strip():
        raise AnnotationError("empty answer")
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        return parse_json_object(body, GptAnnotation)
    except JSONObjectError as exc:
        raise AnnotationError(str(exc)) from exc
