"""Stage 3 clients against a loopback OpenAI-compatible server; the local backend."""

from __future__ import annotations

import asyncio
import json
import pickle
import socket

import pyarrow.parquet as pq
import pytest

from action100m.core.params import AggregationParams, LLMParams
from action100m.core.tree import SegmentTree
from action100m.models.llm.cache import ResponseCache, request_key
from action100m.models.llm.clients import (
    Completion,
    CompletionFailed,
    OpenAIChatClient,
)
from action100m.models.llm.local import TransformersChatClient
from action100m.models.llm.prompts import build_messages
from action100m.models.llm.refine import (
    annotate_tree,
    eligible_nodes,
    refine_annotation,
)
from tests.openai_server import FakeOpenAIServer, annotation_answer

MESSAGES = [
    {"role": "system", "content": "annotate"},
    {"role": "user", "content": "# Current segment, from 0.00 to 10.00 seconds\n"},
]


def _segment(index: int) -> list[dict[str, str]]:
    """A conversation about segment ``index`` (each a different request)."""
    user = f"# Current segment, from {index}.00 to {index + 1}.00 seconds\n"
    return [MESSAGES[0], {"role": "user", "content": user}]


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


# the chat client's default budget is the run's (LLMParams)
MAX_TOKENS = LLMParams().max_tokens
FIRST_ASKED = {"temperature": 0.0, "max_tokens": MAX_TOKENS, "seed": 0}


@pytest.mark.parametrize("fault", ["500", "429", "malformed"])
def test_an_answer_got_on_a_retry_is_cached_under_the_request_first_asked(
    tmp_path, fault
):
    """Whether the retry resent the request (a fault of the server) or changed it
    (an invalid answer: a new temperature), its answer is found by the first
    request, so a rerun sends nothing."""
    with FakeOpenAIServer(annotation_answer) as server:
        server.script = [fault]
        first = asyncio.run(_client(server.base_url, tmp_path).complete(MESSAGES))
        assert len(server.requests) == 2
        again = asyncio.run(_client(server.base_url, tmp_path).complete(MESSAGES))
        assert len(server.requests) == 2  # the rerun sent nothing
    stored = ResponseCache(str(tmp_path)).get(
        request_key("test-model", MESSAGES, FIRST_ASKED)
    )
    answered = {
        "temperature": 0.3 if fault == "malformed" else 0.0,
        "max_tokens": MAX_TOKENS,
    }
    assert stored["attempts"] == 2 and stored["request"] == answered
    assert (again.attempts, again.request, again.cached) == (2, answered, True)
    assert again.annotation == first.annotation and not first.cached


def test_a_request_that_never_got_a_valid_answer_is_not_cached(tmp_path):
    with FakeOpenAIServer(annotation_answer) as server:
        server.default = "500"
        with pytest.raises(CompletionFailed, match="HTTP 500"):
            asyncio.run(_client(server.base_url, tmp_path).complete(MESSAGES))
        server.default = "ok"
        done = asyncio.run(_client(server.base_url, tmp_path).complete(MESSAGES))
    assert len(server.requests) == 4 and not done.cached  # asked again, answered


def _ask_at_once(client: OpenAIChatClient, conversations: list) -> list:
    """Every conversation's completion (or exception), all asked concurrently."""

    async def ask() -> list:
        try:
            return await asyncio.gather(
                *(client.complete(c) for c in conversations), return_exceptions=True
            )
        finally:
            await client.aclose()

    return asyncio.run(ask())


def test_identical_conversations_in_flight_are_sent_once(tmp_path):
    with FakeOpenAIServer(annotation_answer) as server:
        server.default = "sleep:0.2"
        client = _client(server.base_url)  # no disk cache: only the sharing
        done = _ask_at_once(client, [MESSAGES, MESSAGES, _segment(7)])
        assert len(server.requests) == 2
        assert done[0].annotation == done[1].annotation
        assert [d.cached for d in done] == [False, True, False]
        assert client.work.calls == 2

        server.default = "500"  # a persistent fault fails every asker, once
        failed = _ask_at_once(_client(server.base_url), [MESSAGES, MESSAGES])
        assert len(server.requests) == 2 + 3
    assert all(isinstance(f, CompletionFailed) for f in failed)
    assert all("HTTP 500" in str(f) for f in failed)


def test_a_cache_of_the_earlier_format_is_replayed(tmp_path):
    """Caches written before answers were kept by the first request hold one
    answer per attempt, each under that attempt's own request."""
    cache = ResponseCache(str(tmp_path))
    answer = annotation_answer({"messages": MESSAGES})
    retried = {"temperature": 0.3, "max_tokens": MAX_TOKENS, "seed": 1}
    for params, text in ((FIRST_ASKED, "not JSON"), (retried, answer)):
        key = request_key("test-model", MESSAGES, params)
        cache.put(key, {"text": text, "finish_reason": "stop", "usage": {}})
    with FakeOpenAIServer(annotation_answer) as server:
        done = asyncio.run(_client(server.base_url, tmp_path).complete(MESSAGES))
    assert server.requests == []
    assert (done.attempts, done.cached, done.text) == (2, True, answer)
    stored = cache.get(request_key("test-model", MESSAGES, FIRST_ASKED))
    assert stored["attempts"] == 2  # rewritten: the next look-up is one read


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
    failed = {e["node_id"] for e in result["errors"] if e["landed_round"] is None}
    assert set(result["annotations"]) | failed == eligible
    assert not set(result["annotations"]) & failed
    assert 1 <= len(result["errors"]) <= 2
    assert all("HTTP 400" in e["reason"] for e in result["errors"])
    for error in result["errors"]:  # a round-2 failure keeps the round-1 answer
        if error["landed_round"] is not None:
            assert error["reason"].startswith("round 2")
            assert error["node_id"] in result["annotations"]


def _round(body: dict) -> int:
    return 1 + sum(m["role"] == "assistant" for m in body["messages"])


def test_a_failing_later_round_keeps_the_last_valid_answer():
    with FakeOpenAIServer(annotation_answer) as server:
        server.rule = lambda body: "500" if _round(body) == 3 else None
        result = asyncio.run(
            refine_annotation(_client(server.base_url), MESSAGES, 3, [None])
        )
    assert result["gpt"]["summary"]["brief"].startswith("round 2")
    assert result["landed_round"] == 2
    assert [r["round"] for r in result["rounds"]] == [1, 2]
    assert result["error"].startswith("round 3: failed after 3 attempts: HTTP 500")


def test_only_a_failed_first_round_leaves_the_node_without_annotation():
    with FakeOpenAIServer(annotation_answer) as server:
        server.default = "missing"
        result = asyncio.run(
            refine_annotation(_client(server.base_url), MESSAGES, 3, [None])
        )
    assert result["gpt"] is None and result["landed_round"] is None
    assert result["error"].startswith("round 1")


def test_a_greedy_only_fault_is_overcome_by_a_changed_retry():
    """A server that answers every greedy request with invalid JSON: resending the
    same request (only the seed differs, which greedy decoding ignores) can never
    succeed, so the retry samples at the next temperature of the schedule."""
    with FakeOpenAIServer(annotation_answer) as server:
        server.rule = lambda body: "malformed" if body["temperature"] == 0 else None
        client = _client(server.base_url, retry_temperatures=(0.3, 0.6))
        done = asyncio.run(client.complete(MESSAGES))
    assert done.attempts == 2
    assert [r["temperature"] for r in server.requests] == [0.0, 0.3]
    first, second = (
        {k: v for k, v in r.items() if k != "seed"} for r in server.requests
    )
    assert first != second
    assert done.request["temperature"] == 0.3


def test_the_temperature_schedule_climbs_with_each_invalid_answer():
    with FakeOpenAIServer(annotation_answer) as server:
        server.default = "malformed"
        client = _client(server.base_url, max_attempts=4, retry_temperatures=(0.3, 0.6))
        with pytest.raises(CompletionFailed, match="invalid JSON"):
            asyncio.run(client.complete(MESSAGES))
    assert [r["temperature"] for r in server.requests] == [0.0, 0.3, 0.6, 0.6]


def test_a_transient_fault_resends_the_same_request():
    with FakeOpenAIServer(annotation_answer) as server:
        server.script = ["500"]
        asyncio.run(_client(server.base_url).complete(MESSAGES))
    assert [r["temperature"] for r in server.requests] == [0.0, 0.0]


def test_a_truncated_answer_is_retried_with_less_reasoning_then_a_larger_budget():
    def cut_short(body: dict) -> str | None:
        return None if body["max_tokens"] >= 400 else "truncated"

    with FakeOpenAIServer(annotation_answer) as server:
        server.rule = cut_short
        client = _client(
            server.base_url, max_attempts=5, max_tokens=100, max_tokens_limit=1000
        )
        done = asyncio.run(client.complete(MESSAGES, "high"))
    sent = [(r["reasoning_effort"], r["max_tokens"]) for r in server.requests]
    assert sent == [
        ("high", 100),
        ("medium", 100),
        ("low", 100),
        ("low", 200),
        ("low", 400),
    ]
    assert done.attempts == 5
    assert done.request == {
        "temperature": 0.9,
        "max_tokens": 400,
        "reasoning_effort": "low",
    }


def test_the_budget_never_grows_past_its_limit():
    with FakeOpenAIServer(annotation_answer) as server:
        server.default = "truncated"
        client = _client(
            server.base_url, max_attempts=4, max_tokens=100, max_tokens_limit=250
        )
        with pytest.raises(CompletionFailed, match="truncated output"):
            asyncio.run(client.complete(MESSAGES))
    assert [r["max_tokens"] for r in server.requests] == [100, 200, 250, 250]


def _tiny_client(tiny_models, **kwargs) -> TransformersChatClient:
    settings = {
        "device": "cpu",
        "max_field_chars": 24,
        "max_tokens": 400,
        "temperature": 0.7,
        "max_attempts": 1,
        "reasoning_max_tokens": 8,
    } | kwargs
    client = TransformersChatClient(str(tiny_models["gpt_oss"]), **settings)
    client.ensure_setup()
    return client


def test_tiny_gpt_oss_answers_are_valid_by_construction(tiny_models):
    client = _tiny_client(tiny_models)
    assert client.harmony  # its tokenizer speaks gpt-oss's format
    for seed in range(4):
        client.seed = seed
        done = asyncio.run(client.complete(build_messages(*_small_tree()), "low"))
        assert done.attempts == 1 and done.annotation.action.actor
        # random weights never close their reasoning: the budget opened the answer
        assert done.usage["reasoning_tokens"] == 8
        assert done.usage["completion_tokens"] > 8


def test_the_local_chat_template_gets_the_reasoning_effort(tiny_models):
    client = _tiny_client(tiny_models)
    messages = build_messages(*_small_tree())
    for effort in ("high", "low"):
        text = client.tokenizer.apply_chat_template(
            messages,
            tokenize=False,
            add_generation_prompt=True,
            reasoning_effort=effort,
        )
        assert f"Reasoning: {effort}" in text
        assert text.endswith("<|start|>assistant")


def test_the_answer_grammar_takes_any_unicode_but_control_characters(tiny_models):
    import xgrammar

    client = _tiny_client(tiny_models)
    fields = {
        "summary": {"brief": "A \u201cquote\u201d.", "detailed": "Non\u2011breaking"},
        "action": {
            "brief": "Cut\u202fit",
            "detailed": "Caf\u00e9 t\u00e9",
            "actor": "N/A",
        },
    }
    good = json.dumps(fields, ensure_ascii=False)
    matcher = xgrammar.GrammarMatcher(client.grammar)
    assert matcher.accept_string(good)
    assert matcher.accept_token(client.tokenizer.eos_token_id)
    bad = good.replace("Cut\u202fit", "Cut\u0007it")
    assert not xgrammar.GrammarMatcher(client.grammar).accept_string(bad)


def _small_tree():
    from action100m.core.tree import Node

    nodes = [
        Node("r", None, 0, 0.0, 8.0, "act", "a caption"),
        Node("a", "r", 1, 0.0, 4.0, "x", "left", "frame"),
        Node("b", "r", 1, 4.0, 8.0, "y", "right", "frame"),
    ]
    tree = SegmentTree("v", nodes, metadata={"title": "t"})
    return tree, nodes[0]


def test_prompt_injection_cannot_reach_other_videos(tmp_path):
    from action100m.core.params import ExecutorParams
    from action100m.models.llm.schema import GptAnnotation
    from action100m.pipelines.aggregation.nodes import annotate_trees
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
            lazy = annotate_trees(
                {u: (lambda u=u: trees[u]) for u in uids},
                settings,
                ExecutorParams(),
                lambda uid: {},
            )
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


def test_no_node_of_a_released_tree_is_lost_to_greedy_or_late_faults(release_sample):
    """A server that answers every greedy request with invalid JSON and fails every
    third round: each eligible node still lands, with its round-2 answer."""
    row = pq.read_table(release_sample).to_pylist()[2]
    tree = SegmentTree.from_release_row(row)
    params = AggregationParams.model_validate(
        {"llm": {"max_attempts": 3, "backoff_s": 0.0}}
    )

    def faults(body: dict) -> str | None:
        if _round(body) == 3:
            return "500"
        return "malformed" if body["temperature"] == 0 else None

    with FakeOpenAIServer(annotation_answer) as server:
        server.rule = faults
        client = _client(server.base_url, max_concurrency=8, backoff_s=0.0)
        result = asyncio.run(annotate_tree(client, tree, params))
    eligible = {n.node_id for n in eligible_nodes(tree)}
    assert set(result["annotations"]) == eligible
    assert set(result["landed_round"].values()) == {2}
    assert {e["node_id"] for e in result["errors"]} == eligible
    assert all(e["reason"].startswith("round 3") for e in result["errors"])
    for gpt in result["annotations"].values():
        assert gpt["summary"]["brief"].startswith("round 2")


def test_the_answer_continues_the_reasoning_cache_exactly(tiny_models):
    """Greedy answers with the reasoning's KV cache reused equal answers computed
    from a fresh prefill of the same tokens."""
    import torch
    from xgrammar.contrib.hf import LogitsProcessor

    from action100m.models.llm.local import HARMONY_ANALYSIS, HARMONY_END, HARMONY_FINAL

    client = _tiny_client(tiny_models, temperature=0.0)
    messages = build_messages(*_small_tree())
    params = {"temperature": 0.0, "max_tokens": 400, "seed": 0}
    reused = client._generate(messages, {**params, "reasoning_effort": "low"})

    tok, llm = client.tokenizer, client.llm
    ids = tok.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True,
        reasoning_effort="low",
    )["input_ids"]  # fmt: skip
    ids = torch.cat([ids, client._tokens(HARMONY_ANALYSIS)], dim=1)
    greedy = {"do_sample": False, "pad_token_id": tok.pad_token_id}
    with torch.inference_mode():
        ids = llm.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=8,
            eos_token_id=tok.convert_tokens_to_ids(HARMONY_END),
            **greedy,
        )
        opener = HARMONY_FINAL
        if int(ids[0, -1]) != tok.convert_tokens_to_ids(HARMONY_END):
            opener = HARMONY_END + HARMONY_FINAL
        ids = torch.cat([ids, client._tokens(opener)], dim=1)
        out = llm.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=400 - 8,
            logits_processor=[LogitsProcessor(client.grammar)],
            **greedy,
        )
    fresh = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    assert reused.text == fresh
    json.loads(reused.text)


def test_client_keeps_max_concurrency_requests_in_flight():
    with FakeOpenAIServer(annotation_answer) as server:
        server.default = "sleep:0.3"
        client = _client(server.base_url, max_concurrency=5)
        done = _ask_at_once(client, [_segment(i) for i in range(12)])
    assert all(isinstance(d, Completion) for d in done)
    assert len(done) == 12 and len(server.requests) == 12
    assert server.peak_in_flight == 5


def test_chat_clients_are_built_from_their_parameters(monkeypatch, tmp_path):
    from action100m.models.llm.factory import make_chat_client

    monkeypatch.setenv("MY_KEY", "secret")
    monkeypatch.setenv("OPENAI_API_KEY", "another key")
    params = LLMParams(
        retry_temperatures=[0.2], max_tokens_limit=999, timeout_s=5.0,
        max_concurrency=3, api_key_env="MY_KEY", cache_dir=str(tmp_path),
    )  # fmt: skip
    client = make_chat_client(params)
    assert isinstance(client, OpenAIChatClient)
    assert client.retry_temperatures == (0.2,) and client.max_tokens_limit == 999
    assert (client.timeout_s, client.max_concurrency) == (5.0, 3)
    assert client._api_key == "secret"
    unset = make_chat_client(params.model_copy(update={"api_key_env": "NO_SUCH_KEY"}))
    assert unset._api_key == "EMPTY"  # no silent fall back to OPENAI_API_KEY


def test_every_llm_request_reaches_the_run_totals_and_none_is_saved(tmp_path):
    from action100m.core.params import ExecutorParams
    from action100m.models.work import RUN_WORK
    from action100m.pipelines.aggregation.nodes import annotate_trees
    from tests.pipelines.aggregation.test_prompts import captioned_tree

    meta = {"title": "Packing", "description": "Boxes.", "transcript": []}
    trees = {uid: captioned_tree(uid, meta) for uid in ("one", "two", "three")}
    params = AggregationParams.model_validate(
        {"llm": {"rounds": 2, "cache_dir": str(tmp_path / "cache")}}
    )
    RUN_WORK.reset()
    with FakeOpenAIServer(annotation_answer) as server:
        params.llm.base_url = server.base_url
        server.script = ["500"]  # a retried request is sent, and counted, twice
        lazy = annotate_trees(
            {u: (lambda u=u: trees[u]) for u in trees},
            params,
            ExecutorParams(),
            lambda uid: {},
            video_manifest=[{"video_uid": u, "duration": 8.0} for u in trees],
        )
        results = {u: lazy[u]() for u in trees}
        sent = len(server.requests)
    assert all("work" not in r and r["errors"] == [] for r in results.values())
    metrics = RUN_WORK.metrics()
    answered = sent - 1  # the scripted 500 carried no usage
    assert metrics["work.llm.calls"] == answered
    assert metrics["work.llm.calls_per_video_hour"] == pytest.approx(
        answered / (24.0 / 3600)
    )


def test_each_video_counts_its_own_requests_and_a_failed_one_too(tmp_path):
    """Three videos in flight on one client; the middle one (one eligible node)
    fails when the answer of its second round breaks the client. Each video's
    work holds exactly the requests sent for it, and the failure's work still
    reaches the run totals."""
    from action100m.core.errors import VideoFailure, record_failure
    from action100m.models.work import RUN_WORK, collect_work
    from action100m.pipelines.aggregation.nodes import STAGE, AggregationWorker
    from tests.pipelines.aggregation.test_prompts import captioned_tree

    uids = ("first", "broken", "last")
    trees = {
        uid: captioned_tree(
            uid, {"title": f"Title {uid}"}, 6.0 if uid == "broken" else 24.0
        )
        for uid in uids
    }
    assert len(eligible_nodes(trees["broken"])) == 1  # nothing else of it in flight
    params = AggregationParams.model_validate({"llm": {"rounds": 2}})

    def sent_for(uid: str) -> list[dict]:
        return [r for r in server.requests if f"Title {uid}" in json.dumps(r)]

    with FakeOpenAIServer(annotation_answer) as server:
        server.rule = lambda body: (
            "badchoice"
            if "Title broken" in json.dumps(body) and _round(body) == 2
            else None
        )
        params.llm.base_url = server.base_url
        worker = AggregationWorker(params)
        futures = {uid: worker.submit(trees[uid]) for uid in uids}  # all in flight
        results = {u: record_failure(STAGE, u, f.result) for u, f in futures.items()}
        worker.teardown()
        sent = {uid: len(sent_for(uid)) for uid in uids}

    broken = results["broken"]
    assert isinstance(broken, VideoFailure)
    assert "AttributeError" in broken.reason
    assert broken.work["llm"]["calls"] == sent["broken"] == 2
    assert "work" not in broken.to_dict()  # counted, never saved
    assert pickle.loads(pickle.dumps(broken)).work == broken.work  # from Ray actors
    for uid in ("first", "last"):
        assert results[uid]["errors"] == []
        assert results[uid]["work"]["llm"]["calls"] == sent[uid] > 0
    RUN_WORK.reset()
    kept = {uid: collect_work(results[uid], 24.0) for uid in uids}
    assert RUN_WORK.metrics()["work.llm.calls"] == sum(sent.values())
    assert kept["broken"].work is None and kept["broken"] == broken
