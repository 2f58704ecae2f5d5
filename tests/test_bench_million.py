"""The driver's per-step work grows at most linearly with the number of videos.

Runs ``benchmarks/bench_million.py`` at 200 and 2,000 fabricated videos and checks
what each step touched, not how long it took: files opened (an audit hook's
count) grow at most linearly, folders listed do not grow, peak RSS stays flat,
and the run index's pages stay bounded.
"""

from __future__ import annotations

import pytest

from benchmarks.bench_million import GOAL_EXPONENT, GOAL_RSS_RATIO, run

LIGHT_STEPS = ["manifest", "listing", "decisions", "run_index"]


@pytest.mark.slow
def test_driver_steps_touch_files_at_most_linearly(tmp_path):
    result = run([200, 2000], [], tmp_path, only=LIGHT_STEPS)
    runs, summary = result["runs"], result["summary"]
    assert sorted(runs) == sorted(LIGHT_STEPS)
    for name, by_n in runs.items():
        assert summary[name]["files_opened_exponent"] <= GOAL_EXPONENT, name
        assert by_n[2000]["folders_listed"] == by_n[200]["folders_listed"], name
        assert summary[name]["rss_ratio"] <= GOAL_RSS_RATIO, name
    # A rerun reads two records per video and submits only the missing 1 %.
    decisions = runs["decisions"][2000]
    assert decisions["reused"] + decisions["written"] == 2000
    assert decisions["submitted"] == decisions["written"] < 2000 * 0.02
    assert decisions["files_opened"] <= 3 * 2000
    # The index's pages do not grow with the run.
    small, large = runs["run_index"][200], runs["run_index"][2000]
    assert (
        large["pages"] == 2
        and large["page_bytes"] <= 1.1 * 1000 / 200 * (small["page_bytes"])
    )
    assert large["summary_bytes"] < 2 * small["summary_bytes"]
