"""The dialect table and the Anthropic translation as plain functions (no HTTP)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from router.dispatch import anthropic
from router.dispatch.dialects import (
    CLAUDE,
    GENERIC,
    GPT5,
    GPT51,
    GPT52,
    KIMI_ENGINE,
    KIMI_MOONSHOT,
    OPENAI_CHAT,
    dialect_for,
)
from router.dispatch.modes import build_request, wanted_mode
from router.policy.model import Backend

PRICE = {"input_per_mtok": 1.0, "output_per_mtok": 1.0}
HI = [{"role": "user", "content": "Hi"}]


def backend(**fields: Any) -> Backend:
    return Backend(pricing=PRICE, **fields)


@pytest.mark.parametrize(("fields", "dialect"), [
    ({"provider": "openai", "model": "gpt-5.2"}, GPT52),
    ({"provider": "openai", "model": "gpt-5.1-2025-11-13"}, GPT51),
    ({"provider": "openai", "model": "gpt-5-mini"}, GPT5),
    ({"provider": "openai", "model": "o3"}, GPT5),
    ({"provider": "openai", "model": "gpt-4.1"}, OPENAI_CHAT),
    ({"provider": "anthropic", "model": "claude-sonnet-4-5"}, CLAUDE),
    ({"flavour": "vllm", "model": "moonshotai/Kimi-K2.5"}, KIMI_ENGINE),
    ({"flavour": "nim", "model": "moonshotai/kimi-k2.5"}, KIMI_ENGINE),
    ({"flavour": "moonshot", "model": "kimi-k2.5"}, KIMI_MOONSHOT),
    ({"flavour": "openai", "model": "some-local-model"}, GENERIC),
])
def test_each_backend_finds_its_table_entry(fields: dict[str, Any], dialect: Any) -> None:
    assert dialect_for(backend(**fields)) is dialect


def test_a_forced_mode_reaches_vendor_default_routes_only() -> None:
    assert wanted_mode({"model": "auto:instant"}, "default") == "instant"
    assert wanted_mode({"model": "x", "router": {"mode": "thinking"}}, "default") == "thinking"
    assert wanted_mode({"model": "auto:instant"}, "thinking") == "thinking"  # a Kimi route keeps its own


@pytest.mark.parametrize(("model", "asked", "sent"), [
    ("gpt-5-mini", "none", "minimal"), ("gpt-5-mini", "xhigh", "high"), ("gpt-5.2", "minimal", "none"),
    ("gpt-5.1", "xhigh", "high"), ("gpt-5.2", "xhigh", "xhigh"),
])
def test_reasoning_effort_maps_to_the_nearest_accepted_value(model: str, asked: str, sent: str) -> None:
    request = build_request({"model": "auto", "messages": HI, "reasoning_effort": asked},
                            backend(provider="openai", model=model), "default", max_output_tokens=None)
    assert request.body["reasoning_effort"] == sent
    assert request.adjusted == (() if asked == sent else ("reasoning_effort",))


def test_claude_thinking_budget_follows_the_time_left() -> None:
    claude = backend(provider="anthropic", model="claude-sonnet-4-5", max_output_tokens=64000,
                     latency={"ttft_ms": 900, "output_tokens_per_s": 50})
    body = {"model": "auto:thinking", "messages": HI}
    now = time.perf_counter()
    roomy = build_request(body, claude, "default", max_output_tokens=None, deadline=now + 100).body
    assert 2400 <= roomy["thinking"]["budget_tokens"] <= 2500  # ~100 s x 50 tok/s x 1/2
    tight = build_request(body, claude, "default", max_output_tokens=None, deadline=now + 1).body
    assert tight["thinking"]["budget_tokens"] == 1024  # Anthropic's minimum
    small = build_request({**body, "max_tokens": 1000}, claude, "default", max_output_tokens=None).body
    assert "thinking" not in small, "no room for the minimum budget below max_tokens"
    forced = build_request({**body, "tool_choice": "required", "tools": []}, claude, "default",
                           max_output_tokens=None).body
    assert "thinking" not in forced


def test_the_cost_cap_lowers_the_clients_limit_under_the_upstreams_field_name() -> None:
    gpt = backend(provider="openai", model="gpt-5.2")
    body = build_request({"model": "auto", "messages": HI, "max_tokens": 500}, gpt, "default",
                         max_output_tokens=200).body
    assert body["max_completion_tokens"] == 200 and "max_tokens" not in body


def test_claude_answer_with_thinking_and_a_tool_call_becomes_an_openai_message() -> None:
    answer = anthropic.openai_response({
        "id": "msg_1", "type": "message", "model": "claude-sonnet-4-5", "stop_reason": "tool_use",
        "content": [{"type": "thinking", "thinking": "Look it up.", "signature": "s"},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}],
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 4}})
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["logprobs"] is None
    assert choice["message"] == {"role": "assistant", "content": None, "refusal": None,
                                 "reasoning_content": "Look it up.",
                                 "tool_calls": [{"id": "toolu_1", "type": "function", "function": {
                                     "name": "get_weather", "arguments": '{"city":"Oslo"}'}}]}
    assert answer["usage"] == {"prompt_tokens": 14, "completion_tokens": 5, "total_tokens": 19,
                               "prompt_tokens_details": {"cached_tokens": 4}}


def test_claude_stream_events_become_chunks_with_one_id_and_indexed_tool_calls() -> None:
    state = anthropic._StreamState()
    events = [
        {"type": "message_start", "message": {"id": "msg_2", "model": "claude-sonnet-4-5",
                                              "usage": {"input_tokens": 7, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "s"}},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_9",
                                                                      "name": "f", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}},
    ]
    chunks = [c for c in (state.on_event(e) for e in events) if c is not None]
    assert {c["id"] for c in chunks} == {"chatcmpl-msg_2"}
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas == [{"role": "assistant", "content": ""}, {"reasoning_content": "Hmm"},
                      {"tool_calls": [{"index": 0, "id": "toolu_9", "type": "function",
                                       "function": {"name": "f", "arguments": ""}}]},
                      {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}, {}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert state.usage_chunk()["usage"]["completion_tokens"] == 12


def test_json_object_on_claude_is_a_forced_tool_whose_input_is_the_answer() -> None:
    request, beta = anthropic.anthropic_request({"model": "c", "max_tokens": 100, "messages": HI,
                                                 "response_format": {"type": "json_object"}})
    assert request["tool_choice"] == {"type": "tool", "name": anthropic.JSON_TOOL} and not beta
    answer = anthropic.openai_response({"id": "m", "content": [
        {"type": "tool_use", "id": "t", "name": anthropic.JSON_TOOL, "input": {"a": 1}}], "stop_reason": "tool_use"})
    assert answer["choices"][0]["message"]["content"] == '{"a":1}'
    assert answer["choices"][0]["finish_reason"] == "stop"
