"""Permanent, bounded fuzzing: generated client requests and generated upstream garbage.

Client side: every generated chat request gets either an answer or a 4xx in OpenAI's error shape —
never a 5xx, never a hang. Upstream side: an upstream (the replay server standing in for Kimi) that
answers generated garbage, as JSON or as SSE, is an upstream failure — the next route answers
before the first byte, or one error chunk and ``[DONE]`` end the stream after it; never a 5xx,
never a cut stream, never the garbage itself. Derandomized and bounded (200 generated examples in
all) so it runs in ``make test`` in seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.demo import DemoUpstreams
from router.demo.replay import ReplayUpstream, Reply
from tests.conftest import Gateway, default_policy, start_gateway
from tests.support.routing import fast_overrides, sse_events

FUZZ = settings(max_examples=50, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# --- strategies ------------------------------------------------------------------------------------
_scalars = (st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(max_size=8))
json_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=10)


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, sometimes any JSON value at all."""
    return st.one_of(strategy, strategy, json_values)


_parts = st.one_of(
    st.fixed_dictionaries({"type": st.just("text")}, optional={"text": _maybe(st.text(max_size=20))}),
    st.fixed_dictionaries({"type": st.just("image_url")},
                          optional={"image_url": _maybe(st.fixed_dictionaries(
                              {"url": st.just("data:image/png;base64,iVBORw0KGgo=")}))}),
    st.fixed_dictionaries({"type": _maybe(st.sampled_from(["input_audio", "file", "refusal"]))}),
    json_values)
_messages = st.fixed_dictionaries(
    {"role": _maybe(st.sampled_from(["system", "user", "assistant", "tool", "developer"]))},
    optional={"content": _maybe(st.one_of(st.text(max_size=40), st.lists(_parts, max_size=3))),
              "tool_calls": json_values, "tool_call_id": json_values, "name": json_values})
_tools = st.lists(st.fixed_dictionaries(
    {"type": _maybe(st.just("function"))},
    optional={"function": _maybe(st.fixed_dictionaries(
        {"name": _maybe(st.text(min_size=1, max_size=8))},
        optional={"parameters": _maybe(st.fixed_dictionaries(
            {"type": _maybe(st.just("object"))}, optional={"properties": json_values}))}))}), max_size=2)
chat_requests = st.fixed_dictionaries(
    {"model": _maybe(st.sampled_from(["auto", "auto:instant", "kimi:instant", "gpt:default", "nope"])),
     "messages": _maybe(st.lists(_messages, min_size=1, max_size=3))},
    optional={"stream": _maybe(st.booleans() | st.sampled_from(["false", "0", "no", "true"])),
              "metadata": st.integers(100, 250).map(_nested), "temperature": _maybe(st.floats(0, 2)),
              "top_p": _maybe(st.floats(0, 1)), "max_tokens": _maybe(st.integers(1, 64)),
              "tools": _maybe(_tools), "tool_choice": json_values, "n": json_values,
              "stream_options": _maybe(st.fixed_dictionaries({"include_usage": _maybe(st.booleans())})),
              "chat_template_kwargs": json_values, "response_format": json_values,
              "router": _maybe(st.fixed_dictionaries({}, optional={
                  "max_cost_usd": _maybe(st.floats(0.0001, 1)), "latency_budget_ms": json_values,
                  "mode": json_values, "task_type": json_values}))})

_usage = _maybe(st.fixed_dictionaries({}, optional={"prompt_tokens": _maybe(st.integers(0, 100)),
                                                    "completion_tokens": _maybe(st.integers(0, 100)),
                                                    "prompt_tokens_details": json_values}))
_delta = _maybe(st.fixed_dictionaries({}, optional={"role": _maybe(st.just("assistant")),
                                                    "content": _maybe(st.text(max_size=10)),
                                                    "tool_calls": json_values}))
_message = _maybe(st.fixed_dictionaries({"role": st.just("assistant")},
                                        optional={"content": _maybe(st.text(max_size=10)),
                                                  "tool_calls": json_values}))
answers = _maybe(st.fixed_dictionaries(
    {"choices": _maybe(st.lists(_maybe(st.fixed_dictionaries(
        {"index": st.just(0), "message": _message}, optional={"finish_reason": _maybe(st.just("stop"))})),
        max_size=2))},
    optional={"usage": _usage, "id": json_values, "model": json_values}))
chunks = _maybe(st.fixed_dictionaries(
    {"choices": _maybe(st.lists(_maybe(st.fixed_dictionaries(
        {"index": st.just(0), "delta": _delta}, optional={"finish_reason": _maybe(st.just("stop"))})),
        max_size=2))},
    optional={"usage": _usage, "id": st.just("c1"), "model": json_values}))
_event = st.one_of(chunks.map(lambda c: b"data: " + orjson.dumps(c) + b"\n\n"),
                   st.binary(max_size=12).map(lambda b: b"data: " + b + b"\n\n"),
                   st.sampled_from([b": keep-alive\n\n", b"event: ping\n\n", b"data: [DONE]\n\n"]))
sse_bodies = st.lists(_event, min_size=0, max_size=5)


# --- gateways --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fuzz_env(classifier: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, ReplayUpstream]]:
    """Kimi is the replay server; the vendors are demo upstreams without pacing. Circuits never
    open here (every example must meet the broken primary first)."""
    demo = DemoUpstreams().start()
    for name in ("gpt", "claude"):
        demo.set_behavior(name, ttft_ms=0, tokens_per_s=0)
    replay = ReplayUpstream().start()
    policy = default_policy(**fast_overrides(
        backends={"kimi": {"api_base": replay.base_url}},
        circuit={"consecutive_failures": 1_000_000, "error_rate": 1.0, "window": 1_000_000}))
    gw = start_gateway(demo, policy, tmp_path_factory.mktemp("fuzz"), classifier=classifier)
    yield gw, replay
    gw.stop()
    replay.stop()
    demo.stop()


def _post(gw: Gateway, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        r = http.post("/v1/chat/completions", content=body,
                      headers={"content-type": "application/json", **(headers or {})})
        r.read()
        return r


def _assert_protocol_shaped(r: httpx.Response, *, stream: bool) -> list[Any]:
    """A JSON answer, a JSON error or a complete SSE stream; returns the SSE events (if any)."""
    assert r.status_code < 500, (r.status_code, r.text[:500])
    kind = r.headers["content-type"]
    if r.status_code != 200:
        assert kind.startswith("application/json")
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
        return []
    if not stream:
        answer = r.json()
        assert isinstance(answer["choices"], list) and "router" in answer
        for choice in answer["choices"]:
            assert isinstance(choice, dict) and isinstance(choice["message"], dict)
        return []
    assert kind.startswith("text/event-stream")
    events = sse_events(r.text)
    assert events and events[-1] == "[DONE]", r.text[-500:]  # never a cut stream
    for event in events[:-1]:
        assert isinstance(event, dict)
        for choice in event.get("choices") or ():
            assert isinstance(choice, dict) and isinstance(choice.get("delta", {}), dict)
    errors = [i for i, e in enumerate(events[:-1]) if "error" in e]
    assert errors in ([], [len(events) - 2])  # at most one error chunk, right before [DONE]
    return events


# --- client input ----------------------------------------------------------------------------------
@FUZZ
@given(body=chat_requests)
def test_generated_client_requests_get_an_answer_or_a_protocol_shaped_4xx(
        fuzz_env: tuple[Gateway, ReplayUpstream], body: dict[str, Any]) -> None:
    gw, replay = fuzz_env
    replay.set_reply(Reply.json(orjson.dumps(_GOOD_ANSWER)))
    if body.get("stream") is True:
        replay.set_reply(Reply.sse(_GOOD_STREAM))
    r = _post(gw, orjson.dumps(body), {"x-router-latency-budget": "20000"})
    _assert_protocol_shaped(r, stream=body.get("stream") is True)


@FUZZ
@given(raw=st.binary(max_size=64) | json_values.map(orjson.dumps))
def test_generated_raw_bodies_get_a_protocol_shaped_4xx(fuzz_env: tuple[Gateway, ReplayUpstream],
                                                        raw: bytes) -> None:
    r = _post(fuzz_env[0], raw)
    assert 400 <= r.status_code < 500, r.text
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}


# --- upstream garbage ------------------------------------------------------------------------------
_GOOD_ANSWER = {"id": "x", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                             "finish_reason": "stop"}]}
_GOOD_STREAM = [b'data: {"id":"c1","choices":[{"index":0,"delta":{"role":"assistant","content":"hi"}}]}\n\n',
                b'data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
                b"data: [DONE]\n\n"]
_QUESTION = {"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
_SIMPLE = {"x-router-task-type": "simple"}


@FUZZ
@given(answer=answers | st.binary(max_size=40).map(lambda b: b"raw:" + b))
def test_generated_json_garbage_falls_back_or_passes_only_when_well_formed(
        fuzz_env: tuple[Gateway, ReplayUpstream], answer: Any) -> None:
    gw, replay = fuzz_env
    replay.set_reply(Reply.json(answer if isinstance(answer, bytes) else orjson.dumps(answer)))
    r = _post(gw, orjson.dumps(_QUESTION), _SIMPLE)
    _assert_protocol_shaped(r, stream=False)
    assert r.status_code == 200  # a broken primary is never the client's problem: the chain answers


@FUZZ
@given(events=sse_bodies)
def test_generated_sse_garbage_falls_back_or_ends_with_an_error_chunk(
        fuzz_env: tuple[Gateway, ReplayUpstream], events: list[bytes]) -> None:
    gw, replay = fuzz_env
    replay.set_reply(Reply.sse(events))
    r = _post(gw, orjson.dumps({**_QUESTION, "stream": True}), _SIMPLE)
    assert r.status_code == 200, r.text
    _assert_protocol_shaped(r, stream=True)


# --- the cases the fault run found, pinned -----------------------------------------------------------
_ROLE = b'data: {"id":"c1","choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n'
_TOKEN = b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"Par"}}]}\n\n'


@pytest.mark.parametrize("garbage", [b"data: [1,2]\n\n", b'data: {"choices":[7]}\n\n',
                                     b'data: {"choices":[{"delta":{"content":5}}]}\n\n', b"data: 7\n\n",
                                     b'data: {"choices":[],"usage":{"prompt_tokens":"many"}}\n\n'])
def test_garbage_before_the_first_token_moves_on_to_the_next_route(
        fuzz_env: tuple[Gateway, ReplayUpstream], garbage: bytes) -> None:
    gw, replay = fuzz_env
    replay.set_reply(Reply.sse([_ROLE, garbage, _TOKEN, b"data: [DONE]\n\n"]))
    r = _post(gw, orjson.dumps({**_QUESTION, "stream": True}), _SIMPLE)
    events = _assert_protocol_shaped(r, stream=True)
    assert r.headers["x-router-route"] != "kimi:instant" and r.headers["x-router-fallbacks"] == "1"
    assert not any("error" in e for e in events[:-1])


@pytest.mark.parametrize("garbage", [b"data: [1,2]\n\n", b'data: {"choices":[7]}\n\n'])
def test_garbage_after_the_first_token_ends_with_one_error_chunk_and_done(
        fuzz_env: tuple[Gateway, ReplayUpstream], garbage: bytes) -> None:
    gw, replay = fuzz_env
    replay.set_reply(Reply.sse([_ROLE, _TOKEN, garbage, _TOKEN, b"data: [DONE]\n\n"]))
    r = _post(gw, orjson.dumps({**_QUESTION, "stream": True}), _SIMPLE)
    events = _assert_protocol_shaped(r, stream=True)
    assert r.headers["x-router-route"] == "kimi:instant"
    assert events[-2]["error"]["type"] == "upstream_error"
    relayed = [c["choices"][0]["delta"].get("content") for c in events[:-2]]
    assert [t for t in relayed if t is not None] == ["Par"]  # the garbage (and what follows) never relayed


@pytest.mark.parametrize("answer", [
    {**_GOOD_ANSWER, "usage": {"prompt_tokens": "many"}},
    {**_GOOD_ANSWER, "usage": [1]},
    {**_GOOD_ANSWER, "choices": [5]},
    {**_GOOD_ANSWER, "choices": [{"index": 0, "message": "hi"}]},
])
def test_a_malformed_json_answer_moves_on_to_the_next_route(fuzz_env: tuple[Gateway, ReplayUpstream],
                                                            answer: dict[str, Any]) -> None:
    gw, replay = fuzz_env
    replay.set_reply(Reply.json(orjson.dumps(answer)))
    r = _post(gw, orjson.dumps(_QUESTION), _SIMPLE)
    assert r.status_code == 200, r.text
    assert r.headers["x-router-route"] != "kimi:instant" and r.headers["x-router-fallbacks"] == "1"
