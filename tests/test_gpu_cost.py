"""``benchmarks/gpu_cost.py --tiny``: the GPU cost benchmark's code, on CPU."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_gpu_cost_tiny_run_shares_the_prefill_with_the_same_captions(tmp_path, capsys):
    from action100m.console import main as console
    from benchmarks.gpu_cost import LEAVES_PER_MINUTE, main

    out = tmp_path / "cost.json"
    assert main(["--tiny", "--seconds", "6", "--repeats", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["device"] == "cpu"
    assert report["failed_requests"] == {"old": 0, "new": 0}
    assert report["nodes"] == 2 * report["leaves"] - 1
    assert report["leaves"] == round(LEAVES_PER_MINUTE / 10)  # the release's
    plm = report["plm"]
    assert plm["new_prompt_tokens_per_node"] <= 0.6 * plm["old_prompt_tokens_per_node"]
    assert report["same_captions"] == f"{report['nodes']}/{report['nodes']} nodes"
    old, new = report["work"]["old"], report["work"]["new"]
    assert new["plm"]["frames"] * 2 == old["plm"]["frames"]  # one vision pass
    assert new["plm"]["generated_tokens"] == old["plm"]["generated_tokens"] > 0
    for counter in ("frames", "prompt_tokens", "generated_tokens"):
        assert new["llama"][counter] == old["llama"][counter]  # the same lengths
    assert report["engine"]["plm"]["slots"] == 16  # slots on CPU: the setting
    for stage in ("stage1", "stage2", "stages_1_2"):
        assert report[stage]["old_gpu_hours_per_video_hour"] > 0
        assert report[stage]["new_over_old"] > 0
    # The real-size models' roofline and the H200's calibration, from its counters.
    assert "roofline on H200 from this run's counters" in capsys.readouterr().err
    assert console(["estimate-cost", "--from", str(out)]) == 0
    assert "total (stages 1+2)" in capsys.readouterr().out
