"""The evaluation node on release rows and saved Self-Refine rounds."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from action100m.core.params import SegmentationParams
from action100m.core.schema import RELEASE_SCHEMA
from action100m.datasets import PartitionLoaders
from action100m.pipelines.evaluation.nodes import evaluate_run


def _round(number: int, brief: str, attempts: int = 1) -> dict:
    return {
        "round": number,
        "attempts": attempts,
        "annotation": {"summary": {"brief": brief}},
    }


def test_metrics_summary_and_index_from_one_pass(release_sample):
    rows = pq.read_table(release_sample).to_pylist()[:2]
    table = pa.Table.from_pylist(rows, schema=RELEASE_SCHEMA)
    uid = rows[0]["video_uid"]
    part = {
        "rounds": {
            "n1": [_round(1, "a"), _round(2, "b", attempts=3), _round(3, "b")],
            "n2": [_round(1, "a"), _round(2, "a")],
        },
        "errors": [
            {"node_id": "n2", "field": "gpt", "reason": "round 3", "landed_round": 2},
            {
                "node_id": "n3",
                "field": "gpt",
                "reason": "round 1",
                "landed_round": None,
            },
        ],
    }
    annotations = PartitionLoaders({uid: lambda: part})
    duration = max(n["end"] for n in rows[0]["nodes"])
    cuts = PartitionLoaders({uid: lambda: {"cut_times": [duration / 2]}})
    manifest = [
        {"video_uid": r["video_uid"], "duration": max(n["end"] for n in r["nodes"])}
        for r in rows
    ]
    errors = [{"video_uid": "broken", "stage": "ingest", "reason": "not a video"}]

    metrics, summary, page, listings = evaluate_run(
        table, annotations, cuts, manifest, errors, SegmentationParams()
    )
    value = {name: m["value"] for name, m in metrics.items()}
    assert value["videos"] == 2 and value["invariant_pass_rate"] == 1.0
    assert value["nodes"] == sum(len(r["nodes"]) for r in rows)
    assert value["llm_requests"] == 5
    assert value["llm_first_attempt_valid_rate"] == 4 / 5
    assert value["refine_change_rate_round2"] == 0.5  # n1 changed, n2 did not
    assert value["refine_change_rate_round3"] == 0.0
    assert value["llm_nodes_landed_before_last_round"] == 1
    assert value["llm_nodes_without_annotation"] == 1
    assert value["videos_with_ground_truth"] == 1
    assert 0 <= value["boundary_f1"] <= 1
    assert value["failed_videos"] == 1
    assert summary["errors"] == errors
    assert "broken" in page and sorted(listings) == ["videos-00001"]
    listing = listings["videos-00001"]()
    assert all(r["video_uid"] in listing for r in rows)
