"""``/v1/messages`` routed to Claude: the client's Messages body goes out as it came, Claude's answer
and events come back as they came (dispatch/anthropic.py ``passthrough_body``, the door's relay).

A recording upstream (tests/support/capture.py) stands in for Claude: the tests send requests with
Anthropic's own SDK through the real gateway and assert the exact body Claude received, then script
Claude's answer / events and assert what the client got — and that the accounting read its usage.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import orjson
import pytest

from router.dispatch.dialects import ANTHROPIC_MIN_THINKING_BUDGET
from tests.conftest import Gateway, default_policy, start_gateway
from tests.support import door_conformance
from tests.support.capture import CaptureUpstream

WEATHER = {"name": "get_weather", "description": "Current weather for a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
CLAUDE_SIGNED = {"type": "thinking", "thinking": "The user wants Paris; call the tool.",
                 "signature": "EqQBCkYIBxgCKkBclaude-made-this"}
# A thinking block the router rendered from another model: Claude cannot verify its signature.
RELAYED_THINKING = {"type": "thinking", "thinking": "Kimi thought this.", "signature": "model-router.0123abcd"}
# Every Anthropic-only feature a coding agent sends (platform.claude.com/docs/en/api/messages).
REQUEST: dict[str, Any] = {
    "max_tokens": 4096,
    "system": [{"type": "text", "text": "You are a careful assistant.", "cache_control": {"type": "ephemeral"}},
               {"type": "text", "text": "Cite the document when you use it."}],
    "messages": [
        {"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                            "data": "Paris is the capital of France."},
             "title": "Atlas", "citations": {"enabled": True}, "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            {"type": "text", "text": "What is the weather in the capital?"}]},
        {"role": "assistant", "content": [CLAUDE_SIGNED, {"type": "tool_use", "id": "toolu_01A7", "name": "get_weather",
                                                          "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A7",
                                      "content": [{"type": "text", "text": "18 C, clear"}], "is_error": False}]},
    ],
    "tools": [{**WEATHER, "cache_control": {"type": "ephemeral"}}],
    "tool_choice": {"type": "auto"},
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "metadata": {"user_id": "user-7"},
    "stop_sequences": ["END"],
}
# What Claude answers: cited text, a signed thinking block, a tool call with its id, cache counts.
CITED = {"type": "char_location", "cited_text": "Paris is the capital of France.", "document_index": 0,
         "document_title": "Atlas", "start_char_index": 0, "end_char_index": 31}
MESSAGE: dict[str, Any] = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [CLAUDE_SIGNED,
                {"type": "text", "text": "Paris, the capital, is clear at 18 C.", "citations": [CITED]},
                {"type": "tool_use", "id": "toolu_01B9", "name": "get_weather", "input": {"city": "Lyon"}}],
    "stop_reason": "tool_use", "stop_sequence": None,
    "usage": {"input_tokens": 40, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 3000,
              "output_tokens": 120, "service_tier": "standard"},
}
EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("message_start", {"type": "message_start", "message": {
        **MESSAGE, "content": [], "stop_reason": None,
        "usage": {"input_tokens": 40, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 3000,
                  "output_tokens": 1}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0,
                             "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
    ("ping", {"type": "ping"}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "thinking_delta", "thinking": CLAUDE_SIGNED["thinking"]}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "signature_delta", "signature": CLAUDE_SIGNED["signature"]}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("content_block_start", {"type": "content_block_start", "index": 1,
                             "content_block": {"type": "text", "text": "", "citations": []}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1,
                             "delta": {"type": "citations_delta", "citation": CITED}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1,
                             "delta": {"type": "text_delta", "text": "Paris, the capital, is clear at 18 C."}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    ("content_block_start", {"type": "content_block_start", "index": 2, "content_block": {
        "type": "tool_use", "id": "toolu_01B9", "name": "get_weather", "input": {}}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 2,
                             "delta": {"type": "input_json_delta", "partial_json": '{"city": "Lyon"}'}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 2}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                       "usage": {"output_tokens": 120}}),
    ("message_stop", {"type": "message_stop"}),
]


@pytest.fixture(scope="module")
def capture() -> Iterator[CaptureUpstream]:
    upstream = CaptureUpstream().start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def gw(capture: CaptureUpstream, classifier: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = start_gateway(None, default_policy(), Path(tmp_path_factory.mktemp("passthrough")),  # type: ignore[arg-type]
                            classifier=classifier, env=capture.backend_env())
    yield gateway
    gateway.stop()


@pytest.fixture(autouse=True)
def minimal_replies(capture: CaptureUpstream) -> Iterator[None]:
    yield
    capture.anthropic_message = capture.anthropic_events = None


def sdk(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key="test-key", max_retries=0)


def sent(capture: CaptureUpstream) -> dict[str, Any]:
    assert capture.last["path"] == "/v1/messages"
    return dict(capture.last["body"])


def cost_usd(gw: Gateway, usage: dict[str, int]) -> float:
    """Claude's price for Anthropic's usage: cache writes at the input price, reads at the cached one."""
    price_in, price_cached, price_out = gw.services.store.current.policy.backends["claude"].pricing.per_token_usd()
    fresh = usage["input_tokens"] + usage["cache_creation_input_tokens"]
    return fresh * price_in + usage["cache_read_input_tokens"] * price_cached + usage["output_tokens"] * price_out


def counter(gw: Gateway, line_start: str) -> float:
    for line in httpx.get(f"{gw.url}/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# --- the request Claude receives ---------------------------------------------------------------
def test_claude_receives_the_clients_body_as_it_came(gw: Gateway, capture: CaptureUpstream) -> None:
    request = copy.deepcopy(REQUEST)
    request["messages"].insert(0, {"role": "user", "content": "Earlier question"})
    request["messages"].insert(1, {"role": "assistant", "content": [RELAYED_THINKING, {"type": "text", "text": "A"}]})
    answer = sdk(gw).messages.create(model="claude:default", **request, extra_body={"router": {"max_cost_usd": 1.0}})
    assert "adjusted_params" not in (answer.model_extra or {})["router"]  # nothing the client sent was changed
    expected = copy.deepcopy(request)
    expected["model"] = "claude-sonnet-4-5"  # the route's upstream model
    expected["messages"][1]["content"] = [{"type": "text", "text": "A"}]  # only the router's own thinking goes
    assert sent(capture) == expected  # cache_control, document, citations, signatures, ids, metadata
    headers = capture.last["headers"]
    assert headers["x-api-key"] == "sk-a" and headers["anthropic-version"] == "2023-06-01"
    assert "test-key" not in repr(capture.last)  # the client's own key never goes upstream


def test_stream_flag_and_the_money_cap_on_max_tokens_and_the_thinking_budget(gw: Gateway,
                                                                           capture: CaptureUpstream) -> None:
    with sdk(gw).messages.stream(model="claude:default", **REQUEST,
                                 extra_body={"router": {"max_cost_usd": 0.03}}) as stream:
        stream.get_final_message()
    body = sent(capture)
    assert body["stream"] is True
    # $0.03 pays for ~1,900 output tokens at $15/M, less the prompt: max_tokens lowered below the
    # client's 4096, and the thinking budget kept below it (Claude refuses budget >= max_tokens).
    assert ANTHROPIC_MIN_THINKING_BUDGET < body["max_tokens"] < REQUEST["max_tokens"]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": body["max_tokens"] - 1}
    assert {k: v for k, v in body.items() if k not in ("max_tokens", "thinking", "stream", "model")} == \
        {k: v for k, v in REQUEST.items() if k not in ("max_tokens", "thinking")}


def test_only_what_the_claude_dialect_cannot_take_is_dropped(gw: Gateway, capture: CaptureUpstream) -> None:
    hi = [{"role": "user", "content": "Hi"}]
    client = sdk(gw)
    # (this SDK version has no keywords for the sampling parameters; the API still takes them)
    answer = client.messages.create(model="claude:default", max_tokens=300, messages=hi,
                                    extra_body={"temperature": 0.2, "top_p": 0.9, "top_k": 5})
    body = sent(capture)
    assert body == {"model": "claude-sonnet-4-5", "max_tokens": 300, "messages": hi, "temperature": 0.2, "top_k": 5}
    assert (answer.model_extra or {})["router"]["adjusted_params"] == ["top_p"]
    # Thinking takes no sampling changes and no forced tool (build-with-claude/extended-thinking).
    thinking = {"type": "enabled", "budget_tokens": 1024}
    answer = client.messages.create(model="claude:default", max_tokens=3000, messages=hi, thinking=thinking,
                                    extra_body={"temperature": 0.2, "top_k": 5})
    assert sent(capture) == {"model": "claude-sonnet-4-5", "max_tokens": 3000, "messages": hi, "thinking": thinking}
    assert (answer.model_extra or {})["router"]["adjusted_params"] == ["temperature", "top_k"]
    client.messages.create(model="claude:default", max_tokens=3000, messages=hi, thinking=thinking, tools=[WEATHER],
                           tool_choice={"type": "any"})
    assert "thinking" not in sent(capture) and sent(capture)["tool_choice"] == {"type": "any"}


def test_a_thinking_mode_adds_thinking_only_when_the_client_named_none(gw: Gateway, capture: CaptureUpstream) -> None:
    hi = [{"role": "user", "content": "Hi"}]
    client = sdk(gw)
    client.messages.create(model="claude:default", max_tokens=20000, messages=hi, extra_body={"temperature": 0.5},
                           extra_headers={"x-router-mode": "thinking"})
    body = sent(capture)
    budget = body["thinking"]["budget_tokens"]  # from the time left of the latency budget
    assert body["thinking"]["type"] == "enabled" and ANTHROPIC_MIN_THINKING_BUDGET <= budget < 20000
    assert "temperature" not in body
    client.messages.create(model="claude:default", max_tokens=20000, messages=hi, thinking={"type": "disabled"},
                           extra_headers={"x-router-mode": "thinking"})
    assert sent(capture)["thinking"] == {"type": "disabled"}


# --- the answer the client receives --------------------------------------------------------------
def test_claudes_message_comes_back_as_it_came_and_is_accounted(gw: Gateway, capture: CaptureUpstream) -> None:
    capture.anthropic_message = MESSAGE
    tokens = 'router_tokens_total{direction="input",route="claude:default"}'
    before = counter(gw, tokens)
    response = httpx.post(f"{gw.url}/v1/messages", json={"model": "claude-sonnet-4-5", **REQUEST},  # an alias
                          headers={"anthropic-version": "2023-06-01"}, timeout=20)
    assert response.status_code == 200, response.text
    answer = response.json()
    router = answer.pop("router")
    assert answer == MESSAGE  # citations, signature, tool_use id, stop reason, usage with cache counts
    assert router["route"] == "claude:default" == response.headers["x-router-route"]
    expected_cost = cost_usd(gw, MESSAGE["usage"])
    assert router["cost_usd"] == pytest.approx(expected_cost, rel=1e-6)
    assert float(response.headers["x-router-cost-usd"]) == pytest.approx(expected_cost, rel=1e-6)
    assert counter(gw, tokens) - before == 4040  # fresh + cache writes + cache reads
    parsed = sdk(gw).messages.create(model="claude:default", **REQUEST)
    assert parsed.content[1].citations[0].cited_text == CITED["cited_text"]
    assert parsed.usage.cache_read_input_tokens == 3000


def test_claudes_events_come_back_as_they_came(gw: Gateway, capture: CaptureUpstream) -> None:
    capture.anthropic_events = EVENTS
    with httpx.stream("POST", f"{gw.url}/v1/messages", json={"model": "claude:default", "stream": True, **REQUEST},
                      headers={"anthropic-version": "2023-06-01"}, timeout=20) as response:
        assert response.status_code == 200
        raw = b"".join(response.iter_bytes())
    frames = door_conformance.anthropic_stream(raw)  # every event one of the SDK's published types
    delta_name, delta = frames[-2]
    router = delta.pop("router")
    assert frames == EVENTS  # every event, in Claude's order, with Claude's own data
    assert delta_name == "message_delta" and router["route"] == "claude:default"
    usage = {**EVENTS[0][1]["message"]["usage"], "output_tokens": 120}
    assert router["cost_usd"] == pytest.approx(cost_usd(gw, usage), rel=1e-6)
    with sdk(gw).messages.stream(model="claude:default", **REQUEST) as stream:
        final = stream.get_final_message()
    assert final.model_dump(exclude_none=True, exclude={"usage"}) == \
        anthropic.types.Message.model_validate(MESSAGE).model_dump(exclude_none=True, exclude={"usage"})


def test_a_failure_mid_stream_is_an_error_event_in_the_messages_shape(gw: Gateway, capture: CaptureUpstream) -> None:
    capture.anthropic_events = [*EVENTS[:4], ("error", {"type": "error", "error": {
        "type": "overloaded_error", "message": "Overloaded"}})]
    with httpx.stream("POST", f"{gw.url}/v1/messages", json={"model": "claude:default", "stream": True, **REQUEST},
                      timeout=20) as response:
        raw = b"".join(response.iter_bytes())
    frames = door_conformance.anthropic_stream(raw)
    assert [name for name, _ in frames] == [name for name, _ in EVENTS[:4]] + ["error"]
    assert frames[-1][1]["type"] == "error" and frames[-1][1]["error"]["type"] == "api_error"
    assert "mid-stream" in frames[-1][1]["error"]["message"]
    with pytest.raises(anthropic.APIStatusError), \
            sdk(gw).messages.stream(model="claude:default", **REQUEST) as stream:
        stream.get_final_message()
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert 'router_requests_total{api="messages",mode="default",route="claude:default",status="upstream_error"' \
        in metrics


def test_the_chat_door_to_claude_is_still_translated(gw: Gateway, capture: CaptureUpstream) -> None:
    answer = gw.client().chat.completions.create(model="claude:default", messages=[{"role": "user", "content": "Hi"}],
                                                 max_tokens=50)
    assert sent(capture) == {"model": "claude-sonnet-4-5", "max_tokens": 50,
                             "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}
    assert answer.object == "chat.completion" and answer.choices[0].message.content == "ok"


# --- fallback from Claude to a chat-shaped route in the same request -----------------------------
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_failing_claude_falls_back_to_kimi_translated(gateway_factory: Any, stream: bool) -> None:
    from tests.support.routing import fast_overrides

    policy = default_policy(**fast_overrides(
        backends={"claude": {"latency": {"ttft_ms": 5}}, "kimi": {"latency": {"ttft_ms": 300}}}),
        objective="fastest", tasks={"simple": {"candidates": ["claude:default", "kimi:instant"]}})
    gw: Gateway = gateway_factory(policy)
    gw.demo.set_behavior("claude", error_rate=1.0, error_status=503)
    body = {"model": "auto", "max_tokens": 256, "stream": stream,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "What is the capital of France?"}]}
    response = httpx.post(f"{gw.url}/v1/messages", json=body, timeout=30,
                          headers={"anthropic-version": "2023-06-01", "x-router-task-type": "simple"})
    assert response.status_code == 200, response.text
    assert response.headers["x-router-route"] == "kimi:instant"
    assert int(response.headers["x-router-fallbacks"]) == 2  # both attempts on Claude failed
    claude_got = gw.demo.stats("claude")["last_requests"][-1]["body"]
    assert claude_got["system"] == body["system"]  # Claude was sent the client's own body
    kimi_got = gw.demo.stats("kimi")["last_requests"][-1]["body"]
    assert kimi_got["messages"][0] == {"role": "system", "content": "Be brief."}  # Kimi the chat-shaped one
    if stream:
        frames = door_conformance.anthropic_stream(response.content)
        assert frames[-2][1]["router"]["route"] == "kimi:instant"
        text = "".join(f[1]["delta"].get("text", "") for f in frames if f[0] == "content_block_delta")
    else:
        answer = response.json()
        door_conformance.assert_strict(door_conformance.ANTHROPIC_MESSAGE.validate_python(answer), answer)
        text = "".join(b["text"] for b in answer["content"] if b["type"] == "text")
    assert "Kimi" in text  # the demo Kimi says who answered


def test_a_malformed_message_from_claude_is_an_upstream_failure(gw: Gateway, capture: CaptureUpstream) -> None:
    capture.anthropic_message = {**MESSAGE, "content": "not a list of blocks"}
    response = httpx.post(f"{gw.url}/v1/messages", json={"model": "claude:default", **REQUEST}, timeout=20)
    assert response.status_code == 502, response.text
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == "api_error"
    assert "not a list of blocks" not in response.text  # never passed on


def test_structured_output_config_reaches_claude_as_sent(gateway_factory: Any) -> None:
    """``output_config.format`` (structured outputs, platform.claude.com/docs/en/build-with-claude/
    structured-outputs) goes to Claude as the client wrote it; the demo Claude answers the schema."""
    gw: Gateway = gateway_factory(default_policy())
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    body = {"model": "claude:default", "max_tokens": 256, "messages": [{"role": "user", "content": "Capital of Peru?"}],
            "output_config": {"format": {"type": "json_schema", "schema": schema}, "effort": "low"}}
    response = httpx.post(f"{gw.url}/v1/messages", json=body, timeout=20)
    assert response.status_code == 200, response.text
    assert gw.demo.stats("claude")["last_requests"][-1]["body"]["output_config"] == body["output_config"]
    text = "".join(b["text"] for b in response.json()["content"] if b["type"] == "text")
    assert set(orjson.loads(text)) == {"city"}
