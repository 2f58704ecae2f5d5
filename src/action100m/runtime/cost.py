"""GPU time of Stages 1 and 2 from work counters: a roofline, calibrated per card.

Per role (``embedder``, ``plm``, ``llama``) the roofline adds three phases:

* vision: frames through the vision tower, ``frames x FLOPs per frame`` at the
  card's peak bf16 FLOP/s;
* prefill: ``2 x params x prefill_tokens`` plus causal attention (and, for
  cross-attention layers, the key/value projections of the vision tokens and
  the text-to-vision attention), at peak FLOP/s;
* decode: per decoding step the language model's weights are read once, and
  every generated token reads its row's KV cache (prompt plus half the answer,
  and the vision tokens of cross-attention layers): bytes at the card's memory
  bandwidth (or FLOPs at peak, whichever takes longer).

A card (``conf/cards/<name>.yml``) holds the peak rates and one calibration
factor per role: measured seconds over roofline seconds in a measured run of
``benchmarks/gpu_cost.py`` (:func:`calibrate`). The model facts (layers,
widths, tokens per frame) are data in ``conf/cards/models.yml``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
CARDS_DIR = ROOT / "conf" / "cards"
MODELS_FILE = CARDS_DIR / "models.yml"
BF16 = 2  # bytes per weight and per cached key/value element
#: The stages on GPU and the roles whose work they pay for.
STAGE_ROLES = {"segmentation": ("embedder",), "captioning": ("plm", "llama")}
PHASES = ("vision", "prefill", "decode")


@dataclass(frozen=True)
class Tower:
    """A vision transformer: GELU MLP, full attention over ``sequence_tokens``."""

    layers: int
    hidden: int
    intermediate: int
    tokens_per_frame: int
    sequence_tokens: int

    def flops_per_frame(self) -> float:
        h, i = self.hidden, self.intermediate
        matmul = 2 * self.layers * (4 * h * h + 2 * h * i)
        attention = 4 * self.sequence_tokens * h * self.layers
        return self.tokens_per_frame * (matmul + attention)


@dataclass(frozen=True)
class LanguageModel:
    """A Llama-style decoder: grouped-query attention, SwiGLU MLP, bf16."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    cross_layers: int = 0

    @property
    def params(self) -> int:
        """Matrix weights of the layers (one multiply-add each per token)."""
        h, q, kv = (
            self.hidden,
            self.heads * self.head_dim,
            self.kv_heads * self.head_dim,
        )
        return self.layers * (2 * h * q + 2 * h * kv + 3 * h * self.intermediate)

    @property
    def head_params(self) -> int:
        return self.hidden * self.vocab

    @property
    def weight_bytes(self) -> int:
        """Bytes a decoding step reads: the layers and the output head."""
        return BF16 * (self.params + self.head_params)

    @property
    def kv_bytes_per_token(self) -> int:
        """Cached keys and values of one token in the self-attention layers."""
        return (
            (self.layers - self.cross_layers) * self.kv_heads * self.head_dim * 2 * BF16
        )

    @property
    def cross_kv_bytes_per_token(self) -> int:
        """Cached keys and values of one vision token in the cross layers."""
        return self.cross_layers * self.kv_heads * self.head_dim * 2 * BF16


@dataclass(frozen=True)
class RoleModel:
    """What one role runs: a vision tower, a language model, or both."""

    tower: Tower | None = None
    lm: LanguageModel | None = None
    frames_counter: str = "vision_frames"
    questions_per_prefill: int = 1


@dataclass
class Card:
    """A GPU: datasheet rates and measured calibration per role."""

    name: str
    peak_flops: float
    memory_bandwidth: float
    calibration: dict[str, float] = field(default_factory=dict)
    calibrated_from: str | None = None
    measured_on: str | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        found = {
            "name": self.name,
            "peak_flops": float(self.peak_flops),
            "memory_bandwidth": float(self.memory_bandwidth),
            "calibrated_from": self.calibrated_from,
            "measured_on": self.measured_on,
            "calibration": {k: float(v) for k, v in self.calibration.items()},
        }
        return found | ({"note": self.note} if self.note else {})


def load_models(path: str | os.PathLike = MODELS_FILE) -> dict[str, RoleModel]:
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    return {
        role: RoleModel(
            tower=Tower(**spec["tower"]) if "tower" in spec else None,
            lm=LanguageModel(**spec["lm"]) if "lm" in spec else None,
            **{k: v for k, v in spec.items() if k not in ("tower", "lm")},
        )
        for role, spec in raw.items()
    }


def card_path(name: str) -> Path:
    """A card by name (``h200``) in ``conf/cards``, or a path to a YAML file."""
    if name.endswith((".yml", ".yaml")) or os.sep in name:
        return Path(name)
    return CARDS_DIR / f"{name}.yml"


def load_card(name: str) -> Card:
    path = card_path(name)
    if not path.is_file():
        known = sorted(p.stem for p in CARDS_DIR.glob("*.yml") if p.stem != "models")
        raise FileNotFoundError(f"no card {name!r} ({path}); known cards: {known}")
    with open(path, encoding="utf-8") as handle:
        return Card(**yaml.safe_load(handle))


def roofline(
    model: RoleModel, counts: dict[str, float], card: Card
) -> dict[str, float]:
    """Seconds per phase of one role's work at the card's peak rates."""
    found = dict.fromkeys(PHASES, 0.0)
    tower, lm = model.tower, model.lm
    if tower is not None:
        frames = counts.get(model.frames_counter, 0)
        found["vision"] = frames * tower.flops_per_frame() / card.peak_flops
    if lm is None or not counts.get("calls"):
        return found
    prefills = counts["calls"] / model.questions_per_prefill
    tokens = counts.get("prefill_tokens", 0)
    context = tokens / prefills
    attention_width = lm.heads * lm.head_dim
    self_layers = lm.layers - lm.cross_layers
    flops = (
        2 * lm.params * tokens + 2 * self_layers * attention_width * tokens * context
    )
    flops += 2 * lm.head_params * prefills  # the first token of each row
    vision_tokens = 0.0  # per row, seen by the cross-attention layers
    if lm.cross_layers and tower is not None:
        vision_tokens = (
            counts.get("vision_frames", 0) * tower.tokens_per_frame / prefills
        )
        kv_width = lm.kv_heads * lm.head_dim
        flops += lm.cross_layers * vision_tokens * prefills * 4 * lm.hidden * kv_width
        flops += lm.cross_layers * 4 * attention_width * vision_tokens * tokens
    found["prefill"] = flops / card.peak_flops
    generated = counts.get("generated_tokens", 0)
    answer = generated / prefills  # per row
    read = counts.get("decode_steps", 0) * lm.weight_bytes + generated * (
        lm.kv_bytes_per_token * (context + answer / 2)
        + lm.cross_kv_bytes_per_token * vision_tokens
    )
    decode_flops = 2 * (lm.params + lm.head_params) * generated
    found["decode"] = max(read / card.memory_bandwidth, decode_flops / card.peak_flops)
    return found


def roofline_seconds(
    role: str, counts: dict[str, float], card: Card, models=None
) -> float:
    models = models or load_models()
    return sum(roofline(models[role], counts, card).values())


# ---------------------------------------------------------------- gpu_cost runs


def measured_seconds(run: dict[str, Any], role: str, setting: str = "new") -> float:
    """Seconds ``role`` spent on the video of a ``gpu_cost`` run's setting."""
    seconds = run["video_seconds"] if setting != "old" else run["old_video_seconds"]
    return run[role][f"{setting}_gpu_s_per_video_minute"] * seconds / 60


def calibrate(run: dict[str, Any], card: Card, models=None) -> dict[str, float]:
    """Per role: measured seconds over roofline seconds, from a ``gpu_cost`` run
    (its new settings' counters and times)."""
    models = models or load_models()
    found = {}
    for role, counts in run["work"]["new"].items():
        if role in models:
            predicted = roofline_seconds(role, counts, card, models)
            if predicted > 0:  # a role with no work calibrates nothing
                found[role] = float(f"{measured_seconds(run, role) / predicted:.5g}")
    return found


def card_text(card: Card, header: str) -> str:
    """A card's YAML, under ``header`` (comment lines)."""
    lines = "".join(f"# {line}\n" for line in header.splitlines())
    return lines + yaml.safe_dump(card.as_dict(), sort_keys=False)


def calibrated_card(
    run: dict[str, Any], card: Card, source: str, measured_on: str
) -> tuple[Card, str]:
    """``card`` with its calibration measured by the ``gpu_cost`` run ``run``,
    and its YAML text."""
    card.calibration = calibrate(run, card)
    card.calibrated_from, card.measured_on, card.note = source, measured_on, None
    header = (
        f"{card.name}: peak bf16 FLOP/s and memory bandwidth from the datasheet;\n"
        f"calibration = measured / roofline seconds per role, from the gpu_cost run\n"
        f"{source} ({run.get('device', '?')}, {run['video_seconds']:g} s video, "
        f"measured {measured_on}).\n"
        "Written by `action100m estimate-cost --calibrate-from`; do not edit by hand."
    )
    return card, card_text(card, header)


def write_card(
    path: str | os.PathLike,
    run: dict,
    source: str,
    measured_on: str,
    template: Card | None = None,
) -> Card:
    """Write (or update) the card at ``path`` with ``run``'s calibration; a new
    card takes its rates from ``template``."""
    path = Path(path)
    if path.is_file():
        card = load_card(str(path))
    elif template is not None:
        card = Card(template.name, template.peak_flops, template.memory_bandwidth)
    else:
        raise FileNotFoundError(
            f"{path}: no card there; give an existing card (its peak FLOP/s and "
            "memory bandwidth) to update"
        )
    card, text = calibrated_card(run, card, source, measured_on)
    path.write_text(text, encoding="utf-8")
    return card


def card_for_device(device: str) -> Card | None:
    """The card in ``conf/cards`` whose name the device's name contains."""
    for path in sorted(CARDS_DIR.glob("*.yml")):
        if path.stem != "models" and path.stem.lower() in device.lower():
            return load_card(str(path))
    return None


def measured_vs_predicted(run: dict[str, Any], card: Card) -> str:
    """Per role of a ``gpu_cost`` run: measured seconds beside the roofline and
    the card's calibrated prediction for real-size models, from its counters."""
    models = load_models()
    lines = [
        f"{'role':<10}{'measured s':>12}{'roofline s':>12}"
        f"{f'{card.name} calibrated s':>24}"
    ]
    for role, counts in run["work"]["new"].items():
        if role in models:
            bound = roofline_seconds(role, counts, card, models)
            factor = card.calibration.get(role)
            calibrated = f"{bound * factor:.2f}" if factor is not None else "-"
            lines.append(
                f"{role:<10}{measured_seconds(run, role):>12.2f}{bound:>12.2f}"
                f"{calibrated:>24}"
            )
    return "\n".join(lines)


def run_per_video_hour(run: dict[str, Any]) -> dict[str, dict[str, float]]:
    """A ``gpu_cost`` run's new-settings counters per video-hour."""
    scale = 3600 / run["video_seconds"]
    return {
        role: {k: v * scale for k, v in counts.items()}
        for role, counts in run["work"]["new"].items()
    }


# ------------------------------------------------------------------ estimates


def from_metrics(metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    """Counters per video-hour out of ``work.<role>.<counter>_per_video_hour``
    metrics (MLflow, or the run summary's ``work``)."""
    found: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        parts = key.split(".")
        if (
            len(parts) == 3
            and parts[0] == "work"
            and parts[2].endswith("_per_video_hour")
        ):
            counter = parts[2].removesuffix("_per_video_hour")
            found.setdefault(parts[1], {})[counter] = float(value)
    return found


def shown(path: Path) -> str:
    """``path`` relative to the project when inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def load_counters(source: str | None, card: Card, tracking_uri: str | None = None):
    """(counters per video-hour by role, a description of where they came from).

    ``source``: a ``gpu_cost`` JSON, a ``run_summary.json`` (or the output folder
    holding it), an MLflow run id, or nothing: the run the card was calibrated on
    (release density).
    """
    if source is None:
        if not card.calibrated_from:
            raise ValueError(f"card {card.name} names no run; give --from")
        source = str(ROOT / card.calibrated_from)
    path = Path(source)
    if path.is_dir():
        path = path / "run_summary.json"
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        if "video_seconds" in data and "work" in data:
            return run_per_video_hour(data), f"gpu_cost run {shown(path)}"
        counters = from_metrics(data.get("work") or {})
        if not counters:
            raise ValueError(f"{path}: no work counters per video-hour in it")
        return counters, f"run summary {shown(path)}"
    if os.sep in source or source.endswith(".json"):
        raise FileNotFoundError(f"{source}: no such file")
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    counters = from_metrics(client.get_run(source).data.metrics)
    if not counters:
        raise ValueError(f"MLflow run {source}: no work.* per video-hour metrics")
    return counters, f"MLflow run {source}"


def _summed(rows: list[dict]) -> dict[str, float | None]:
    """Roofline and estimated GPU-hours added up (unknown if any is unknown)."""
    return {
        key: None if any(r[key] is None for r in rows) else sum(r[key] for r in rows)
        for key in ("roofline", "estimated")
    }


def estimate(counters: dict[str, dict[str, float]], card: Card, models=None) -> dict:
    """GPU-hours per video-hour by role and stage: roofline and calibrated."""
    models = models or load_models()
    roles = {}
    for role, counts in counters.items():
        if role not in models:
            continue
        bound = roofline_seconds(role, counts, card, models) / 3600
        factor = card.calibration.get(role)
        roles[role] = {
            "roofline": bound,
            "estimated": bound * factor if factor is not None else None,
        }
    stages = {}
    for stage, members in STAGE_ROLES.items():
        present = [roles[r] for r in members if r in roles]
        if present:
            stages[stage] = _summed(present)
    total = _summed(list(stages.values()))
    skipped = sorted(set(counters) - set(roles))
    return {"roles": roles, "stages": stages, "total": total, "not_modelled": skipped}


def format_estimate(result: dict, card: Card, video_hours: float, source: str) -> str:
    """The table ``estimate-cost`` prints."""

    def row(label: str, found: dict) -> str:
        cells = [found["roofline"], found["estimated"]]
        text = [f"{v:,.3f}" if v is not None else "-" for v in cells]
        whole = found["estimated"]
        text.append(f"{whole * video_hours:,.0f}" if whole is not None else "-")
        return f"{label:<20}{text[0]:>16}{text[1]:>16}{text[2]:>22}"

    lines = [
        f"Card {card.name}: {card.peak_flops / 1e12:,.0f} TFLOP/s bf16, "
        f"{card.memory_bandwidth / 1e12:.2f} TB/s; calibration from "
        f"{card.calibrated_from or 'none'} ({card.measured_on or '-'})",
        *([f"Note: {card.note}"] if card.note else []),
        f"Work counters: {source}",
        f"{'':<20}{'roofline':>16}{'estimated':>16}{'estimated GPU-h':>22}",
        f"{'stage / role':<20}{'GPU-h/video-h':>16}{'GPU-h/video-h':>16}"
        f"{f'for {video_hours:,.0f} video-h':>22}",
    ]
    for stage, members in STAGE_ROLES.items():
        if stage not in result["stages"]:
            continue
        found = result["stages"][stage]
        lines.append(row(stage, found))
        lines += [
            row("  " + role, result["roles"][role])
            for role in members
            if role in result["roles"]
        ]
    lines.append(row("total (stages 1+2)", result["total"]))
    if result["not_modelled"]:
        skipped = ", ".join(result["not_modelled"])
        lines.append(f"Not modelled (no facts): {skipped}")
    lines.append(
        "Estimated = roofline x the card's calibration; roofline = a lower bound."
    )
    return "\n".join(lines)
