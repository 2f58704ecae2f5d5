"""Stage 3 clients against a loopback OpenAI-compatible server; the local backend."""

from __future__ import annotations

import asyncio
import json
import socket

import pyarrow.parquet as pq
import pytest

from action100m.llm.cache import ResponseCache
from action100m.llm.clients import CompletionFailed, OpenAIChatClient
from action100m.llm.local import TransformersChatClient
from action100m.llm.prompts import build_messages
from action100m.llm.refine import annotate_tree, eligible_nodes, refine_annotation
from action100m.params import AggregationParams
from action100m.tree import SegmentTree
from tests.openai_server import FakeOpenAIServer, annotation_answer

MESSAGES = [
    {"role": "system", "content": "annotate"},
    {"role": "user", "content": "## Current segment: 0:00.0 → 0:10.0 (10.0 s)\n"},
]


def _client(url: str, cache_dir=None, **kwargs) -> OpenAIChatClient:
    settings = {"max_attempts": 3, "timeout_s": 1.0, "backoff_s": 0.01} | kwargs
    client = OpenAIChatClient(
        "test-model", base_url=url, cache=ResponseCache(cache_dir), **settings
    )
    client.ensure_setup()
    return client


@pytest.mark.parametrize(
    "fault",
    ["500", "429", "429ra", "sleep:2", "malformed", "truncated", "missing", "empty"],
)
def test_each_fault_is_retried_then_answered(fault):
    with FakeOpenAIServer(annotation_answer) as server:
        server.script = [fault]
        done = asyncio.run(_client(server.base_url).complete(MESSAGES))
    assert done.attempts == 2
    assert done.annotation.summary.brief.startswith("round 1")
    assert server.requests[0]["response_format"]["type"] == "json_schema"


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("500", "HTTP 500"),
        ("429", "HTTP 429"),
        ("sleep:2", "timed out"),
        ("malformed", "invalid JSON"),
        ("truncated", "truncated output"),
        ("missing", "field action"),
        ("400", "not retried"),
    ],
)
def test_persistent_faults_fail_with_a_specific_reason(fault, reason):
    with FakeOpenAIServer(annotation_answer) as server:
        server.default = fault
        with pytest.raises(CompletionFailed, match=reason):
            asyncio.run(_client(server.base_url).complete(MESSAGES))
    assert len(server.requests) == (1 if fault == "400" else 3)


def test_refused_connection_fails_after_attempts():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(CompletionFailed, match="connection error"):
        asyncio.run(_client(f"http://127.0.0.1:{port}/v1").complete(MESSAGES))


def test_self_refine_sends_the_draft_back_and_keeps_every_round(tmp_path):
    with FakeOpenAIServer(annotation_answer) as server:
        client = _client(server.base_url, tmp_path)
        result = asyncio.run(refine_annotation(client, MESSAGES, 3, ["high", "medium"]))
    assert [r["round"] for r in result["rounds"]] == [1, 2, 3]
    assert result["gpt"]["summary"]["brief"].startswith("round 3")
    third = server.requests[2]["messages"]
    assert [m["role"] for m in third] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert json.loads(third[2]["content"])["summary"]["brief"].startswith("round 1")
    assert [r["reasoning_effort"] for r in server.requests] == [
        "high",
        "medium",
        "medium",
    ]


def test_cache_replays_without_sending_twice(tmp_path):
    with FakeOpenAIServer(annotation_answer) as server:
        server.script = ["malformed"]
        first = asyncio.run(
            refine_annotation(_client(server.base_url, tmp_path), MESSAGES, 3, [None])
        )
        sent = len(server.requests)
        again = asyncio.run(
            refine_annotation(_client(server.base_url, tmp_path), MESSAGES, 3, [None])
        )
    assert sent == 4  # one malformed answer, then three rounds
    assert len(server.requests) == sent  # the rerun came from the cache
    assert again["gpt"] == first["gpt"]


def test_every_eligible_node_is_filled_or_recorded(release_sample, tmp_path):
    row = pq.read_table(release_sample).to_pylist()[1]
    tree = SegmentTree.from_release_row(row)
    params = AggregationParams.model_validate(
        {"llm": {"max_attempts": 2, "backoff_s": 0.0, "rounds": 2}}
    )
    with FakeOpenAIServer(annotation_answer) as server:
        server.script = ["500", "truncated"] * 3 + ["400"] * 2
        client = _client(server.base_url, tmp_path, max_attempts=2, max_concurrency=4)
        result = asyncio.run(annotate_tree(client, tree, params))
    eligible = {n.node_id for n in eligible_nodes(tree)}
    failed = {e["node_id"] for e in result["errors"]}
    assert set(result["annotations"]) | failed == eligible
    assert not set(result["annotations"]) & failed
    assert 1 <= len(failed) <= 2
    assert all("HTTP 400" in e["reason"] for e in result["errors"])


def test_tiny_gpt_oss_answers_are_valid_by_construction(tiny_models):
    client = TransformersChatClient(
        str(tiny_models["gpt_oss"]),
        device="cpu",
        max_field_chars=24,
        max_tokens=200,
        temperature=0.7,
        max_attempts=1,
    )
    client.ensure_setup()
    for seed in range(5):
        client.seed = seed
        done = asyncio.run(client.complete(build_messages(*_small_tree())))
        assert done.attempts == 1 and done.annotation.action.actor


def _small_tree():
    from action100m.tree import Node

    nodes = [
        Node("r", None, 0, 0.0, 8.0, "act", "a caption"),
        Node("a", "r", 1, 0.0, 4.0, "x", "left", "frame"),
        Node("b", "r", 1, 4.0, 8.0, "y", "right", "frame"),
    ]
    tree = SegmentTree("v", nodes, metadata={"title": "t"})
    return tree, nodes[0]


def test_prompt_injection_cannot_reach_other_videos(tmp_path):
    from action100m.llm.schema import GptAnnotation
    from action100m.pipelines.aggregation.nodes import annotate_videos
    from tests.pipelines.aggregation.test_prompts import HOSTILE, captioned_tree

    def obedient_model(body: dict) -> str:  # a model that follows injections
        text = " ".join(m["content"] for m in body["messages"])
        if "ignore previous instructions" in text.lower():
            return json.dumps({"summary": "PWNED", "note": "schema ignored"})
        return annotation_answer(body)

    plain = {"title": "Packing", "description": "Boxes.", "transcript": []}
    trees = {
        "hostile": captioned_tree("hostile", HOSTILE),
        "plain": captioned_tree("plain", plain),
    }
    params = AggregationParams.model_validate(
        {"llm": {"max_attempts": 2, "backoff_s": 0.0, "rounds": 2}}
    )

    def run(uids, cache):
        with FakeOpenAIServer(obedient_model) as server:
            settings = params.model_copy(deep=True)
            settings.llm.base_url = server.base_url
            settings.llm.cache_dir = str(tmp_path / cache)
            lazy = annotate_videos({u: (lambda u=u: trees[u]) for u in uids}, settings)
            return {u: lazy[u]() for u in uids}, server.requests

    together, requests = run(["hostile", "plain"], "both")
    alone, _ = run(["plain"], "alone")
    assert together["plain"]["annotations"] == alone["plain"]["annotations"]
    assert together["plain"]["errors"] == []
    for gpt in together["plain"]["annotations"].values():
        GptAnnotation.model_validate(gpt)
        assert "PWNED" not in json.dumps(gpt)
    hostile = together["hostile"]
    assert hostile["annotations"] == {}  # nothing off-schema was kept
    assert {e["node_id"] for e in hostile["errors"]} == {
        n.node_id for n in eligible_nodes(trees["hostile"])
    }
    plain_requests = [r for r in requests if "Packing" in json.dumps(r)]
    assert plain_requests
    assert not any("PWNED" in json.dumps(r) for r in plain_requests)


def test_client_keeps_max_concurrency_requests_in_flight():
    async def send(client: OpenAIChatClient, n: int) -> list:
        try:
            return await asyncio.gather(*(client.complete(MESSAGES) for _ in range(n)))
        finally:
            await client.aclose()

    with FakeOpenAIServer(annotation_answer) as server:
        server.default = "sleep:0.3"
        client = _client(server.base_url, max_concurrency=5)
        done = asyncio.run(send(client, 12))
    assert len(done) == 12 and len(server.requests) == 12
    assert server.peak_in_flight == 5
