"""The base of every model behind a stage: ``setup()`` once, then ``__call__``."""

from __future__ import annotations

import inspect
from typing import Any, Self

from pydantic import BaseModel


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str, device: str):
    """``auto`` -> bfloat16 on GPU, float32 on CPU."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


class StageModel:
    """Separates loading weights (``setup``, once per worker) from calls.

    :meth:`from_params` builds a model from its typed parameters: each
    constructor argument takes the parameter of the same name, so a setting
    added to both is configurable without restating it anywhere else.
    Parameters the constructor does not take (``backend``, ``num_gpus`` ...)
    belong to whoever schedules the model.
    """

    def __init__(self) -> None:
        self._ready = False

    @classmethod
    def constructor_args(cls) -> set[str]:
        """Names the constructor takes, through the ``**kwargs`` it passes up."""
        names: set[str] = set()
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            params = inspect.signature(init).parameters.values()
            names |= {
                p.name
                for p in params
                if p.name != "self"
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            }
            if not any(p.kind is p.VAR_KEYWORD for p in params):
                break
        return names

    @classmethod
    def from_params(cls, params: BaseModel, **overrides: Any) -> Self:
        """``cls(**matching parameters, **overrides)``; builds, loads nothing."""
        accepted = cls.constructor_args()
        values = {
            name: getattr(params, name)
            for name in type(params).model_fields
            if name in accepted
        }
        return cls(**(values | overrides))

    #: Attributes that hold what ``setup`` loaded (weights, processors, clients).
    loaded: tuple[str, ...] = ()

    def teardown(self) -> None:
        """Let go of what ``setup`` loaded; a later call sets it up again."""
        for name in self.loaded:
            if hasattr(self, name):
                setattr(self, name, None)
        self._ready = False
        import sys

        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def ensure_setup(self) -> None:
        """Call :meth:`setup` once."""
        if not self._ready:
            self.setup()
            self._ready = True

    def setup(self) -> None:
        """Load weights or open clients; called once before the first call."""
