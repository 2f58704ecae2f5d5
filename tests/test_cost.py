"""The roofline GPU-time model, the cards that calibrate it, ``estimate-cost``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from action100m.console import main
from action100m.models.work import RunWork
from action100m.runtime import cost
from action100m.runtime.tracking import RunTrackingHook

RUN_FILE = cost.ROOT / "benchmarks" / "results" / "h200_run1.json"
TOY_CARD = cost.Card("toy", peak_flops=1000.0, memory_bandwidth=100.0)
TOY_TOWER = cost.Tower(
    layers=1, hidden=2, intermediate=4, tokens_per_frame=3, sequence_tokens=5
)
TOY_LM = dict(
    layers=2, hidden=4, heads=2, kv_heads=1, head_dim=2, intermediate=8, vocab=10
)
TOY_COUNTS = {"calls": 2, "prefill_tokens": 10, "generated_tokens": 6,
              "decode_steps": 4, "vision_frames": 1}  # fmt: skip


def _run() -> dict:
    return json.loads(RUN_FILE.read_text())


def test_the_roofline_of_toy_models_is_the_hand_computed_one():
    # Tower: 3 tokens x (2 x 1 x (4*2*2 + 2*2*4) + 4 x 5 x 2 x 1) = 312 FLOPs.
    assert TOY_TOWER.flops_per_frame() == 312
    lm = cost.LanguageModel(**TOY_LM)
    assert lm.params == 2 * (2 * 4 * 4 + 2 * 4 * 2 + 3 * 4 * 8) == 288
    assert lm.weight_bytes == 2 * (288 + 40) and lm.kv_bytes_per_token == 16
    phases = cost.roofline(cost.RoleModel(TOY_TOWER, lm), TOY_COUNTS, TOY_CARD)
    # Prefill: 2*288*10 + attention 2*2*4*10*5 (5 tokens per row) + head 2*40*2.
    # Decode: 4 steps x 656 weight bytes + 6 tokens x 16 B x (5 + 3/2) = 3248 B,
    # slower at 100 B/s than its 2*328*6 FLOPs at 1000 FLOP/s.
    assert phases == pytest.approx({"vision": 0.312, "prefill": 6.72, "decode": 32.48})
    # One cross-attention layer: the row's 1.5 vision tokens are projected
    # (2 rows x 1.5 x 4*4*2) and attended (4*4*1.5 per text token x 10), and read
    # while decoding (6 tokens x 8 B x 1.5) beside one self layer's cache.
    crossed = cost.LanguageModel(**TOY_LM, cross_layers=1)
    phases = cost.roofline(cost.RoleModel(TOY_TOWER, crossed), TOY_COUNTS, TOY_CARD)
    prefill = 5760 + 400 + 160 + 96 + 240
    decode = 2624 + 6 * (8 * 6.5 + 8 * 1.5)
    assert phases == pytest.approx(
        {"vision": 0.312, "prefill": prefill / 1000, "decode": decode / 100}
    )
    # Two questions answered from one prefill: one row of 10 prompt tokens.
    shared = cost.RoleModel(TOY_TOWER, lm, questions_per_prefill=2)
    phases = cost.roofline(shared, TOY_COUNTS, TOY_CARD)
    assert phases["prefill"] == pytest.approx((5760 + 2 * 2 * 4 * 10 * 10 + 80) / 1000)


def test_the_calibrated_card_reproduces_the_measured_seconds():
    run, card = _run(), cost.load_card("h200")
    assert set(card.calibration) == {"embedder", "plm", "llama"}
    for role, counts in run["work"]["new"].items():
        predicted = cost.roofline_seconds(role, counts, card) * card.calibration[role]
        assert predicted == pytest.approx(cost.measured_seconds(run, role), rel=0.01)
    # Stages 1+2 per video-hour, from the run's own counters: the measured figure.
    result = cost.estimate(cost.run_per_video_hour(run), card)
    measured = run["stages_1_2"]["new_gpu_hours_per_video_hour"]
    assert result["total"]["estimated"] == pytest.approx(measured, rel=0.01)
    assert result["total"]["roofline"] < result["total"]["estimated"]


def test_the_shipped_cards_are_what_the_calibration_writes():
    path = cost.card_path("h200")
    shipped = cost.load_card("h200")
    assert shipped.calibrated_from == str(RUN_FILE.relative_to(cost.ROOT))
    template = cost.Card(shipped.name, shipped.peak_flops, shipped.memory_bandwidth)
    _, text = cost.calibrated_card(
        _run(), template, shipped.calibrated_from, shipped.measured_on
    )
    assert text == path.read_text()
    # The H100 card: datasheet rates, the H200's factors carried over.
    h100 = cost.load_card("h100")
    assert (h100.peak_flops, h100.memory_bandwidth) == (989e12, 3.35e12)
    assert h100.calibration == shipped.calibration
    assert h100.calibrated_from == shipped.calibrated_from


def test_calibrating_writes_a_card_from_a_gpu_cost_run(tmp_path, capsys):
    target = tmp_path / "mine.yml"
    target.write_text(yaml.safe_dump({"name": "Mine", "peak_flops": 5e14,
                                      "memory_bandwidth": 2e12}))  # fmt: skip
    args = ["estimate-cost", "--card", str(target), "--calibrate-from", str(RUN_FILE)]
    assert main([*args, "--measured-on", "2026-01-02"]) == 0
    card = cost.load_card(str(target))
    assert (card.name, card.peak_flops, card.measured_on) == (
        "Mine",
        5e14,
        "2026-01-02",
    )
    run = _run()
    seconds = cost.roofline_seconds("llama", run["work"]["new"]["llama"], card)
    assert seconds * card.calibration["llama"] == pytest.approx(
        cost.measured_seconds(run, "llama"), rel=0.01
    )
    assert "measured 2026-01-02" in target.read_text()
    assert main(["estimate-cost", "--card", str(tmp_path / "none.yml"),
                 "--calibrate-from", str(RUN_FILE)]) == 1  # fmt: skip
    assert "no card there" in capsys.readouterr().out


def _rows(out: str) -> dict[str, list[str]]:
    """The table's rows by their first cell."""
    found = {}
    for line in out.splitlines():
        label, _, rest = line.partition("  ")
        if label.strip() and rest.strip():
            found[label.strip()] = rest.split()
    return found


def test_estimate_cost_prints_gpu_hours_per_stage_from_a_run_summary(tmp_path, capsys):
    # The tracking hook adds the run's work counters to the summary file.
    from action100m.models import work

    work.RUN_WORK.reset()
    counts = {role: {k: v * 60 for k, v in c.items()}  # one video-minute x 60
              for role, c in _run()["work"]["new"].items()}  # fmt: skip
    for role, found in counts.items():
        work.RUN_WORK.record(role, {k: int(v) for k, v in found.items()}, 3600.0)
    work.RUN_WORK.record("llm", {"calls": 7, "prompt_tokens": 900}, 3600.0)
    summary = {"metrics": {"video_hours": 1.0, "videos": 1}}
    hook = RunTrackingHook()
    hook.after_node_run(_node(), {"run_summary": summary})
    work.RUN_WORK.reset()
    assert summary["work"]["work.plm.prefill_tokens_per_video_hour"] == pytest.approx(
        counts["plm"]["prefill_tokens"]
    )
    (tmp_path / "run_summary.json").write_text(json.dumps(summary))

    assert main(["estimate-cost", "--from", str(tmp_path), "--video-hours", "1e6",
                 "--card", "h100"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    rows = _rows(out)
    card = cost.load_card("h100")
    result = cost.estimate(cost.from_metrics(summary["work"]), card)
    for stage in ("segmentation", "captioning"):
        roofline, estimated, total = rows[stage]
        assert float(roofline) == pytest.approx(
            result["stages"][stage]["roofline"], abs=1e-3
        )
        assert float(estimated) == pytest.approx(
            result["stages"][stage]["estimated"], abs=1e-3
        )
        assert int(total.replace(",", "")) == round(
            result["stages"][stage]["estimated"] * 1e6
        )
    assert float(rows["total (stages 1+2)"][1]) > float(rows["captioning"][1])
    assert "Not modelled (no facts): llm" in out
    assert "carried over" in out  # the H100's calibration is the H200's


def _node():
    from kedro.pipeline import Node

    return Node(lambda x: x, "a", "run_summary", name="evaluate_run_node")


def test_estimate_cost_reads_an_mlflow_run_and_defaults_to_the_card_run(
    tmp_path, capsys
):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("cost"))
    recorded = RunWork()
    for role, counts in _run()["work"]["new"].items():
        recorded.record(role, counts, 60.0)
    for key, value in recorded.metrics().items():
        client.log_metric(run.info.run_id, key, value)
    assert main(["estimate-cost", "--from", run.info.run_id,
                 "--tracking-uri", uri]) == 0  # fmt: skip
    from_mlflow = _rows(capsys.readouterr().out)
    assert main(["estimate-cost"]) == 0  # the counters of the card's own run
    default = capsys.readouterr().out
    assert "gpu_cost run benchmarks/results/h200_run1.json" in default
    assert _rows(default)["total (stages 1+2)"] == from_mlflow["total (stages 1+2)"]
    assert main(["estimate-cost", "--from", str(tmp_path / "missing.json")]) == 1
    assert "no such file" in capsys.readouterr().out


@pytest.mark.slow
def test_model_facts_are_the_benchmark_configs():
    import torch

    from benchmarks.gpu_captioners import llama_parts, plm_parts
    from benchmarks.gpu_vjepa2 import VITG_384

    models = cost.load_models(Path(cost.MODELS_FILE))
    tower = models["embedder"].tower
    patches = (VITG_384["crop_size"] // VITG_384["patch_size"]) ** 2
    assert (tower.layers, tower.hidden) == (
        VITG_384["num_hidden_layers"],
        VITG_384["hidden_size"],
    )
    assert tower.intermediate == round(VITG_384["hidden_size"] * VITG_384["mlp_ratio"])
    assert tower.tokens_per_frame == patches // VITG_384["tubelet_size"]
    assert tower.sequence_tokens == tower.tokens_per_frame * VITG_384["frames_per_clip"]
    for role, parts in (("plm", plm_parts()), ("llama", llama_parts())):
        model_class, config, _ = parts
        with torch.device("meta"):
            model = model_class(config)
        text = model.model.language_model
        matrices = sum(
            p.numel()
            for name, p in text.named_parameters()
            if p.dim() == 2 and "embed" not in name
        )
        lm = models[role].lm
        assert lm.params == matrices
        found = config.text_config
        assert (lm.layers, lm.hidden, lm.heads, lm.kv_heads, lm.vocab) == (
            found.num_hidden_layers, found.hidden_size, found.num_attention_heads,
            found.num_key_value_heads, found.vocab_size,
        )  # fmt: skip
        assert lm.head_dim == found.hidden_size // found.num_attention_heads
        assert lm.cross_layers == len(getattr(found, "cross_attention_layers", []))
    vision = llama_parts()[1].vision_config
    tower = models["llama"].tower
    assert tower.layers == vision.num_hidden_layers + vision.num_global_layers
    assert (tower.hidden, tower.intermediate) == (
        vision.hidden_size,
        vision.intermediate_size,
    )
    assert tower.tokens_per_frame == 2 * ((vision.image_size // 14) ** 2 + 1)
    plm_vision = plm_parts()[1].vision_config.model_args
    tower = models["plm"].tower
    assert (tower.layers, tower.hidden) == (
        plm_vision["depth"],
        plm_vision["embed_dim"],
    )
    assert tower.tokens_per_frame == (plm_vision["img_size"][0] // 14) ** 2


def test_gpu_cost_prints_the_prediction_and_writes_its_card(tmp_path, capsys):
    from argparse import Namespace

    from benchmarks.gpu_cost import report_prediction

    target = tmp_path / "h200.yml"
    report_prediction(_run(), Namespace(write_card=str(target), out="run.json"))
    lines = capsys.readouterr().err.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:5]}
    assert set(rows) == {"embedder", "plm", "llama"}
    for measured, roofline, calibrated in rows.values():
        assert float(calibrated) == pytest.approx(float(measured), abs=0.02)
        assert float(roofline) < float(measured)
    assert cost.load_card(str(target)).calibration == cost.load_card("h200").calibration
