"""The five annotation fields of Stage 3, their JSON schema and strict parsing."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from action100m.media.jsontext import JSONObjectError, parse_json_object

NOT_APPLICABLE = "N/A"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Summary(_Strict):
    brief: str = Field(
        min_length=1, description="One informative sentence that captions the segment."
    )
    detailed: str = Field(
        min_length=1,
        description=(
            "A complete, dense description of the segment: its events in the order "
            "they happen, without timestamps."
        ),
    )


class Action(_Strict):
    brief: str = Field(
        min_length=1,
        description=(
            "One verb phrase naming the overall action step, its verb in the base "
            'form and never an -ing form, with a capital first letter ("Slice the '
            'bread"); or "N/A".'
        ),
    )
    detailed: str = Field(
        min_length=1,
        description=(
            "One imperative sentence saying how the action is carried out, with "
            'enough procedural detail; or "N/A".'
        ),
    )
    actor: str = Field(
        min_length=1,
        description=(
            "One sentence or an informative noun phrase saying who performs the "
            'action ("A woman in a blue apron"); or "N/A".'
        ),
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


def response_structure() -> str:
    """The answer's structure shown to the model: the schema with its ``$ref``s
    inlined and each field's rule as its description."""
    schema = GptAnnotation.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(part: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in part:
            return inline(definitions[part["$ref"].rsplit("/", 1)[1]])
        shown = {k: v for k, v in part.items() if k in _SHOWN}
        if "properties" in shown:
            shown["properties"] = {k: inline(v) for k, v in shown["properties"].items()}
        return shown

    shown = inline(schema)
    shown.pop("description", None)
    return json.dumps(shown, indent=2, ensure_ascii=False)


_SHOWN = ("type", "description", "properties", "required")


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
