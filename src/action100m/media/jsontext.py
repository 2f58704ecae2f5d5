"""Parse text that must be one JSON object of a pydantic model's shape."""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class JSONObjectError(ValueError):
    """Why a text is not a valid object; ``not_json`` when it does not even parse."""

    def __init__(self, message: str, not_json: bool = False) -> None:
        super().__init__(message)
        self.not_json = not_json


def parse_json_object(text: str, model: type[M]) -> M:
    """``text`` as a validated ``model``.

    Raises:
        JSONObjectError: Not JSON, not an object, or every field that fails
            validation, each named by its dotted path.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JSONObjectError(
            f"invalid JSON ({exc.msg} at char {exc.pos})", not_json=True
        ) from exc
    if not isinstance(data, dict):
        raise JSONObjectError(f"a JSON {type(data).__name__}, not an object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"field {'.'.join(str(p) for p in e['loc'])}: {e['msg'].lower()}"
            for e in exc.errors()
        ]
        raise JSONObjectError("; ".join(problems)) from exc
