"""``POST /v1/messages`` end to end with Anthropic's own SDK, unchanged: sync, async, ``messages.stream``,
a tool round trip, an image, a thinking request, count_tokens, the models list, and errors in
Anthropic's shape — through the real gateway to the demo upstreams of every backend."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import (
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
)

from tests.conftest import Gateway, default_policy
from tests.support import door_conformance

PIXEL_B64 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
WEATHER = {"name": "get_weather", "description": "Current weather for a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
ROUTES = ["auto", "kimi:instant", "gpt:default", "claude:default"]
EVENT_TYPES = (RawMessageStartEvent, RawContentBlockStartEvent, RawContentBlockDeltaEvent, RawContentBlockStopEvent,
               RawMessageDeltaEvent, RawMessageStopEvent)


def claude(gw: Gateway, **kwargs: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=kwargs.pop("api_key", "test-key"), max_retries=0, **kwargs)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("model", ROUTES)
def test_create_on_every_route(gateway: Gateway, model: str) -> None:
    raw = claude(gateway).messages.with_raw_response.create(
        model=model, max_tokens=256, system="You are terse.", messages=user("Describe a sunrise"))
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0
    text = "".join(b.text for b in message.content if b.type == "text")
    assert "sunrise" in text
    router = (message.model_extra or {})["router"]
    assert raw.headers["x-router-route"] == router["route"] and router["cost_usd"] > 0
    assert raw.headers["request-id"] == router["request_id"]
    if model != "auto":
        assert router["route"] == model


def test_async_client(gateway: Gateway) -> None:
    async def ask() -> anthropic.types.Message:
        async with anthropic.AsyncAnthropic(base_url=gateway.url, api_key="k", max_retries=0) as client:
            return await client.messages.create(model="auto", max_tokens=128, messages=user("Say hello"))

    message = asyncio.run(ask())
    assert message.content and message.content[0].type == "text"


@pytest.mark.parametrize("model", [*ROUTES, "auto:swarm"])
def test_messages_stream_helper(gateway: Gateway, model: str) -> None:
    prompt = "Compare these databases: PostgreSQL, MySQL" if model == "auto:swarm" else "Describe a sunrise"
    with claude(gateway).messages.stream(model=model, max_tokens=512, messages=user(prompt)) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and text == "".join(b.text for b in final.content if b.type == "text")
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0
    expected = {"auto": None, "auto:swarm": "swarm"}.get(model, model)
    assert expected is None or stream.response.headers["x-router-route"] == expected


@pytest.mark.parametrize("model", ["kimi:thinking", "claude:default"])
def test_every_event_is_one_of_the_published_types(gateway: Gateway, model: str) -> None:
    events = list(claude(gateway).messages.create(model=model, max_tokens=256, stream=True,
                                                  messages=user("Why is the sky blue?")))
    assert all(isinstance(e, EVENT_TYPES) for e in events), [type(e) for e in events]
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    delta = events[-2]
    assert isinstance(delta, RawMessageDeltaEvent) and delta.usage.output_tokens > 0
    assert (delta.model_extra or {})["router"]["route"] == model


CASES = [(m, False) for m in ("kimi:instant", "kimi:thinking", "gpt:default", "claude:default", "auto:swarm")] + [
    (m, True) for m in ("kimi:agent", "gpt:default", "claude:default")]


@pytest.mark.parametrize(("model", "tools"), CASES)
def test_every_stream_and_message_is_strictly_anthropics(gateway: Gateway, model: str, tools: bool) -> None:
    """Over HTTP, every event parses as the SDK's published type (nothing unknown, nothing dropped)."""
    prompt = ("What's the weather in Paris right now?" if tools
              else "Compare these databases: PostgreSQL, MySQL" if model == "auto:swarm" else "Why is the sky blue?")
    body: dict[str, Any] = {"model": model, "max_tokens": 512, "messages": user(prompt),
                            **({"tools": [WEATHER]} if tools else {})}
    headers = {"anthropic-version": "2023-06-01"}
    with httpx.stream("POST", f"{gateway.url}/v1/messages", json={**body, "stream": True}, headers=headers,
                      timeout=20) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(resp.iter_bytes())
    frames = door_conformance.anthropic_stream(raw)
    names = [name for name, _ in frames]
    # The gateway renders message_start then ping; Claude's own events pass in Claude's order.
    opening = ["message_start"] if model.startswith("claude") else ["message_start", "ping"]
    assert names[:len(opening)] == opening and "error" not in names and b"[DONE]" not in raw
    assert frames[-2][1]["router"]["route"] == resp.headers["x-router-route"]
    answer = httpx.post(f"{gateway.url}/v1/messages", json=body, headers=headers, timeout=20).json()
    door_conformance.assert_strict(door_conformance.ANTHROPIC_MESSAGE.validate_python(answer), answer)
    assert answer["stop_reason"] == ("tool_use" if tools else "end_turn")


@pytest.mark.parametrize("model", ["auto", "kimi:agent", "gpt:default", "claude:default"])
def test_tool_use_round_trip(gateway: Gateway, model: str) -> None:
    client = claude(gateway)
    messages: list[Any] = user("What's the weather in Paris right now?")
    first = client.messages.create(model=model, max_tokens=512, tools=[WEATHER], messages=messages)
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and "city" in call.input
    messages += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                               "content": '{"temp_c": 18, "sky": "clear"}'}]}]
    second = client.messages.create(model=model, max_tokens=512, tools=[WEATHER], messages=messages)
    assert second.stop_reason == "end_turn"
    assert "18" in "".join(b.text for b in second.content if b.type == "text")


def test_tool_use_streamed(gateway: Gateway) -> None:
    with claude(gateway).messages.stream(model="kimi:agent", max_tokens=512, tools=[WEATHER],
                                         messages=user("What's the weather in Paris right now?")) as stream:
        final = stream.get_final_message()
    call = next(b for b in final.content if b.type == "tool_use")
    assert final.stop_reason == "tool_use" and call.input.get("city")


def test_an_image_routes_to_a_vision_backend(gateway: Gateway) -> None:
    raw = claude(gateway).messages.with_raw_response.create(model="auto", max_tokens=128, messages=[{
        "role": "user", "content": [{"type": "text", "text": "What is in this picture?"},
                                    {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                 "data": PIXEL_B64}}]}])
    assert raw.headers["x-router-task-type"] == "vision"
    assert "image" in "".join(b.text for b in raw.parse().content if b.type == "text")


def test_thinking_request_gets_thinking_blocks(gateway: Gateway) -> None:
    client = claude(gateway)
    raw = client.messages.with_raw_response.create(model="auto", max_tokens=2048, messages=user("Why is the sky blue?"),
                                                   thinking={"type": "enabled", "budget_tokens": 1024})
    assert raw.headers["x-router-mode"] == "thinking"
    message = raw.parse()
    assert message.content[0].type == "thinking" and message.content[0].thinking
    with client.messages.stream(model="auto", max_tokens=2048, messages=user("Why is the sky blue?"),
                                thinking={"type": "enabled", "budget_tokens": 1024}) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    # Disabled thinking picks the instant mode; an explicit mode header still wins.
    off = client.messages.with_raw_response.create(model="auto", max_tokens=256, messages=user("Hi"),
                                                   thinking={"type": "disabled"})
    assert off.headers["x-router-mode"] == "instant"
    forced = client.messages.with_raw_response.create(model="auto", max_tokens=2048, messages=user("Hi"),
                                                      thinking={"type": "enabled", "budget_tokens": 1024},
                                                      extra_headers={"x-router-mode": "instant"})
    assert forced.headers["x-router-mode"] == "instant"


def test_controls_as_headers_and_router_object(gateway: Gateway) -> None:
    client = claude(gateway)
    raw = client.messages.with_raw_response.create(model="auto", max_tokens=64, messages=user("Hi"),
                                                   extra_body={"router": {"max_cost_usd": 0.5}},
                                                   extra_headers={"x-router-latency-budget": "90000"})
    router = (raw.parse().model_extra or {})["router"]
    assert router["max_cost_usd"] == 0.5 and router["latency_budget_ms"] == 90000


def test_count_tokens_and_models(gateway: Gateway) -> None:
    client = claude(gateway)
    short = client.messages.count_tokens(model="auto", messages=user("Hi"))
    long = client.messages.count_tokens(model="auto", messages=user("Hi " * 400), system="Be brief.")
    assert 0 < short.input_tokens < long.input_tokens
    ids = [m.id for m in client.models.list()]
    assert "auto" in ids and "kimi:instant" in ids
    assert client.models.retrieve("kimi:instant").type == "model"


def _assert_anthropic_error(resp: httpx.Response, status: int, kind: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"type", "error"} and body["type"] == "error"
    assert set(body["error"]) == {"type", "message"} and body["error"]["type"] == kind
    message: str = body["error"]["message"]
    assert message and "Traceback" not in message
    return message


def test_errors_in_anthropics_shape(gateway: Gateway) -> None:
    url = f"{gateway.url}/v1/messages"
    bad_json = httpx.post(url, content=b"{not json", timeout=10, headers={"content-type": "application/json"})
    _assert_anthropic_error(bad_json, 400, "invalid_request_error")
    no_max_tokens = httpx.post(url, json={"model": "auto", "messages": user("Hi")}, timeout=10)
    assert "max_tokens" in _assert_anthropic_error(no_max_tokens, 400, "invalid_request_error")
    with pytest.raises(anthropic.NotFoundError) as info:
        claude(gateway).messages.create(model="gemini-9-ultra", max_tokens=64, messages=user("Hi"))
    assert info.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude(gateway).messages.create(model="auto", max_tokens=64, messages=user("Hi"),
                                        extra_headers={"x-router-max-cost": "0.0000001"})
    assert "ceiling" in bad.value.body["error"]["message"]  # type: ignore[index]
    wrong_method = httpx.get(url, timeout=10)
    _assert_anthropic_error(wrong_method, 405, "invalid_request_error")
    unknown_model = httpx.get(f"{gateway.url}/v1/models/nope", headers={"anthropic-version": "2023-06-01"})
    _assert_anthropic_error(unknown_model, 404, "not_found_error")


def test_upstream_failure_and_auth(gateway_factory: Any) -> None:
    gw: Gateway = gateway_factory(default_policy(retry={"attempts_per_route": 1}),
                                  settings={"client_keys": "key-a"})
    with pytest.raises(anthropic.AuthenticationError) as info:
        claude(gw, api_key="wrong").messages.create(model="auto", max_tokens=64, messages=user("Hi"))
    assert info.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    client = claude(gw, api_key="key-a")  # x-api-key, as Anthropic's SDK sends it
    assert client.messages.create(model="kimi:instant", max_tokens=64, messages=user("Hi")).content
    for name in ("kimi", "gpt", "claude"):
        gw.demo.set_behavior(name, error_rate=1.0, error_status=503)
    resp = httpx.post(f"{gw.url}/v1/messages", headers={"x-api-key": "key-a"}, timeout=20,
                      json={"model": "auto", "max_tokens": 64, "messages": user("Hi")})
    assert "kimi" in _assert_anthropic_error(resp, 502, "api_error")
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert 'router_requests_total{api="messages",mode="instant",route="kimi:instant",status="upstream_error"' in metrics
