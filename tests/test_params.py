"""Parameters: every default written once, described, and marked as changing
results or not; the README's tables are generated from them."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pytest
import yaml
from kedro.config import OmegaConfigLoader

from action100m import settings
from action100m.core.param_table import REGENERATE, format_markdown, replace_tables
from action100m.core.params import (
    SECTIONS,
    AggregationParams,
    ParamInfo,
    all_params,
    changes_results,
)
from action100m.runtime.fingerprint import result_settings

ROOT = Path(__file__).resolve().parents[1]


def conf_params(env: str) -> dict:
    loader = OmegaConfigLoader(
        str(ROOT / "conf"),
        runtime_params={"output_dir": "OUT", "videos_dir": "VIDEOS"},
        **{**settings.CONFIG_LOADER_ARGS, "default_run_env": env},
    )
    return loader["parameters"]


def leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b": 1}`` from ``{"a": {"b": 1}}``; an empty section has none."""
    if not isinstance(value, dict):
        return {prefix.rstrip("."): value}
    found: dict[str, Any] = {}
    for key, item in value.items():
        found.update(leaves(item, f"{prefix}{key}."))
    return found


def section_leaves(params: dict) -> dict[str, Any]:
    return leaves({k: v for k, v in params.items() if k in SECTIONS})


DEFAULTS = {info.name: info.default for info in all_params()}


def test_every_parameter_has_a_meaning_and_says_whether_it_changes_results():
    for info in all_params():
        assert info.field.description, f"{info.name}: no description"
        assert isinstance(changes_results(info.field), bool), info.name


def test_conf_base_sets_no_parameter_to_its_default():
    base = section_leaves(conf_params("base"))
    assert set(base) <= set(DEFAULTS), set(base) - set(DEFAULTS)
    same = sorted(key for key, value in base.items() if value == DEFAULTS[key])
    assert not same, f"conf/base repeats the defaults of core/params.py: {same}"


@pytest.mark.parametrize("env", ["demo"])
def test_an_environment_overrides_only_what_it_changes(env):
    effective = {**DEFAULTS, **section_leaves(conf_params("base"))}
    own: dict[str, Any] = {}
    for path in sorted((ROOT / "conf" / env).glob("parameters*.yml")):
        own.update(section_leaves(yaml.safe_load(path.read_text())))
    assert set(own) <= set(DEFAULTS), set(own) - set(DEFAULTS)
    same = sorted(key for key, value in own.items() if value == effective[key])
    assert not same, f"conf/{env} sets these to the value they have anyway: {same}"


def test_a_base_run_uses_the_published_stage3_context():
    base = conf_params("base")
    aggregation = AggregationParams.model_validate(base["aggregation"])
    assert aggregation.prompt.global_levels == 7
    assert aggregation.prompt.transcript_margin_s is None  # the whole transcript
    for section, model in SECTIONS.items():
        model.model_validate(base[section])  # every section validates as it stands


def _with(data: dict, dotted: str, value: Any) -> dict:
    head, _, rest = dotted.partition(".")
    if not rest:
        return {**data, head: value}
    return {**data, head: _with(data.get(head, {}), rest, value)}


def _other(info: ParamInfo) -> Any:
    """A valid value other than the default."""
    value, annotation = info.default, info.annotation
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is Literal:
        return next(c for c in get_args(annotation) if c != value)
    if value is None:
        return {str: "x", int: 1, float: 1.0}[annotation]
    if isinstance(value, list):
        return [*value, value[-1]]
    if isinstance(value, bool):
        return not value
    return value + ("x" if isinstance(value, str) else 1)


# Both captioners served, so that videos_in_flight may change too.
SERVED = {"plm": {"backend": "openai"}, "llama": {"backend": "openai"}}


@pytest.mark.parametrize("info", all_params(), ids=lambda info: info.name)
def test_exactly_the_result_changing_parameters_change_the_fingerprint(info):
    section, _, key = info.name.partition(".")
    model = SECTIONS[section]
    start = SERVED if section == "captioning" and "backend" not in key else {}
    before = result_settings(model.model_validate(start))
    after = result_settings(model.model_validate(_with(start, key, _other(info))))
    assert (before != after) == info.changes_results


def test_readme_tables_are_the_generated_ones():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert replace_tables(readme, format_markdown()) == readme, (
        f"README.md's parameter tables differ from core/params.py: run `{REGENERATE}`"
    )


def test_params_command_prints_every_parameter():
    done = subprocess.run(
        [sys.executable, "-m", "action100m.console", "params"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    lines = done.stdout.splitlines()
    assert lines[0].split()[:5] == [
        "name",
        "type",
        "default",
        "allowed",
        "changes_results",
    ]
    listed = {line.split()[0] for line in lines[1:]}
    assert listed == set(DEFAULTS)
    stride = next(
        line for line in lines if line.startswith("segmentation.frame_stride ")
    )
    assert stride.split()[1:5] == ["int", "4", ">=", "1"] and " yes " in stride


def test_model_constructors_repeat_no_default_of_their_parameters():
    """A model built without ``from_params`` gets the defaults a run gets."""
    import inspect

    from action100m.core.params import EmbedderParams, LlamaParams, LLMParams, PLMParams
    from action100m.models.captioners import OpenAICaptioner, TransformersCaptioner
    from action100m.models.embedders import VJEPA2Embedder
    from action100m.models.llm import clients

    pairs = [
        (TransformersCaptioner, PLMParams),
        (TransformersCaptioner, LlamaParams),
        (OpenAICaptioner, PLMParams),
        (VJEPA2Embedder, EmbedderParams),
        (clients.ChatClient, LLMParams),
        (clients.OpenAIChatClient, LLMParams),
    ]
    drift = []
    for model, params in pairs:
        for name, arg in inspect.signature(model.__init__).parameters.items():
            field = params.model_fields.get(name)
            if field is None or arg.default is inspect.Parameter.empty:
                continue
            default = field.get_default(call_default_factory=True)
            if isinstance(arg.default, tuple):
                default = tuple(default)
            if arg.default != default:
                drift.append(f"{model.__name__}.{name}={arg.default!r}, {default!r}")
    assert drift == [], drift
