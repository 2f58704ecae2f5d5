"""``action100m validate`` and ``stats`` on the released sample."""

from __future__ import annotations

import json

import pyarrow.compute as pc
import pyarrow.parquet as pq

from action100m.console import main


def test_stats_json_matches_an_independent_count(release_sample, capsys):
    assert main(["stats", "--json", str(release_sample)]) == 0
    stats = json.loads(capsys.readouterr().out)
    table = pq.read_table(release_sample)
    nodes = pc.list_flatten(table.column("nodes"))
    parents = set(pc.struct_field(nodes, "parent_id").to_pylist())
    ids = pc.struct_field(nodes, "node_id").to_pylist()
    gpt = pc.struct_field(nodes, "gpt")
    briefs = pc.struct_field(pc.struct_field(gpt, "action"), "brief").to_pylist()
    present = [b for b, g in zip(briefs, gpt.is_valid().to_pylist(), strict=True) if g]
    assert stats["videos"] == table.num_rows == 6
    assert stats["nodes"] == len(ids) == 2740
    assert stats["leaves"] == sum(i not in parents for i in ids)
    assert stats["gpt_nodes"] == len(present)
    assert stats["na_rate"] == sum(b == "N/A" for b in present) / len(present)
    assert stats["max_depth"] == max(pc.struct_field(nodes, "level").to_pylist())
    assert abs(sum(stats["duration_hist"].values()) - 1.0) < 1e-9
    llama = [c for c in pc.struct_field(nodes, "llama3_caption").to_pylist() if c]
    expected = sum(len(c.split()) for c in llama) / len(llama)
    assert abs(stats["mean_words"]["llama3_caption"] - expected) < 1e-9
    actions = [b for b in present if b is not None]
    mean_action = sum(len(b.split()) for b in actions) / len(actions)
    assert abs(stats["mean_words"]["action_brief"] - mean_action) < 1e-9
    assert stats["paper"]["mean_words"]["action_brief"] == 3.2
    assert stats["paper"]["na_rate"] == 0.0323


def test_stats_table_shows_the_paper_column(release_sample, capsys):
    assert main(["stats", str(release_sample)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["this", "file", "paper"]
    row = next(line for line in lines if line.startswith("words action_brief"))
    assert row.split()[-1] == "3.2"


def test_validate_exit_codes(release_sample, tmp_path, capsys):
    assert main(["validate", str(release_sample)]) == 0
    assert "valid (6 videos" in capsys.readouterr().out
    assert main(["validate", "--strict", str(release_sample)]) == 1
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    assert main(["validate", str(bad)]) == 1
    assert "cannot read parquet" in capsys.readouterr().out
