"""The reannotate pipeline on a catalog of real datasets, against a loopback LLM."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from action100m.core.params import AggregationParams, ExecutorParams
from action100m.core.schema import RELEASE_SCHEMA
from action100m.core.tree import SegmentTree
from action100m.datasets import (
    JSONLinesDataset,
    ReleaseParquetDataset,
    ReleaseSourceDataset,
    VideoPartitionsDataset,
)
from action100m.models.llm.refine import eligible_nodes
from action100m.pipelines.reannotate import create_pipeline
from tests.openai_server import FakeOpenAIServer, annotation_answer


def _catalog(tmp_path, release: str, url: str) -> DataCatalog:
    params = AggregationParams.model_validate(
        {
            "llm": {
                "base_url": url,
                "max_attempts": 2,
                "backoff_s": 0.0,
                "rounds": 2,
                "cache_dir": str(tmp_path / "cache"),
            }
        }
    )
    out = tmp_path / "out"
    return DataCatalog(
        {
            "release_input": ReleaseSourceDataset(filepath=release),
            "intermediate_reannotate_trees": VideoPartitionsDataset(
                path=str(out / "trees")
            ),
            "intermediate_reannotate_annotations": VideoPartitionsDataset(
                path=str(out / "annotations")
            ),
            "reannotated_parquet": ReleaseParquetDataset(
                filepath=str(out / "reannotated.parquet")
            ),
            "reannotate_errors": JSONLinesDataset(
                filepath=str(out / "reannotate_errors.jsonl")
            ),
            "params:aggregation": _memory(params),
            "params:executor": _memory(ExecutorParams()),
        }
    )


def _memory(value):
    from kedro.io import MemoryDataset

    return MemoryDataset(value, copy_mode="assign")


def test_reannotate_recomputes_gpt_of_exactly_the_eligible_nodes(
    tmp_path, release_sample
):
    rows = pq.read_table(release_sample).to_pylist()[:2]
    # Two shards in the published preview's layout: <folder>/data/part-NNNNN.parquet
    source = tmp_path / "preview"
    (source / "data").mkdir(parents=True)
    for index, row in enumerate(rows):
        shard = source / "data" / f"part-{index:05d}.parquet"
        pq.write_table(pa.Table.from_pylist([row], schema=RELEASE_SCHEMA), shard)

    def late_fault(body: dict) -> str | None:  # round 2 fails for nodes at 0 s
        user = body["messages"][1]["content"]
        refine = any(m["role"] == "assistant" for m in body["messages"])
        return (
            "500" if refine and "from 0.00 to" in user.split("# Current")[1] else None
        )

    with FakeOpenAIServer(annotation_answer) as server:
        server.rule = late_fault
        SequentialRunner().run(
            create_pipeline(), _catalog(tmp_path, str(source), server.base_url)
        )

    out = pq.read_table(tmp_path / "out" / "reannotated.parquet")
    assert out.schema.equals(RELEASE_SCHEMA, check_metadata=False)
    assert out.column("video_uid").to_pylist() == [r["video_uid"] for r in rows]
    errors = [
        json.loads(line)
        for line in (tmp_path / "out" / "reannotate_errors.jsonl")
        .read_text()
        .split("\n")
        if line
    ]
    late = {e["node_id"]: e for e in errors}
    for before, after in zip(rows, out.to_pylist(), strict=True):
        tree = SegmentTree.from_release_row(before)
        eligible = {n.node_id for n in eligible_nodes(tree)}
        for old, new in zip(before["nodes"], after["nodes"], strict=True):
            for field in ("node_id", "start", "end", "plm_caption", "llama3_caption"):
                assert old[field] == new[field]
            if old["node_id"] not in eligible:
                assert new["gpt"] is None
                continue
            brief = new["gpt"]["summary"]["brief"]
            if old["node_id"] in late:  # round 2 failed: round 1 kept
                assert brief.startswith("round 1")
                assert late[old["node_id"]]["landed_round"] == 1
            else:
                assert brief.startswith("round 2")
    assert late and all(e["stage"] == "aggregation" for e in errors)
