"""POST /v1/chat/completions through the official openai SDK: every backend kind and mode,
streaming, tools, images, reasoning, usage and the router's own answer fields."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Gateway

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAAB"
         "JRU5ErkJggg==")


def _last_body(demo: Any, name: str) -> dict[str, Any]:
    body: dict[str, Any] = demo.stats(name)["last_requests"][-1]["body"]
    return body


@pytest.mark.parametrize(("model", "backend", "upstream_model"), [
    ("kimi:instant", "kimi", "moonshotai/Kimi-K2.5"),
    ("kimi:thinking", "kimi", "moonshotai/Kimi-K2.5"),
    ("gpt:default", "gpt", "gpt-5.2"),
    ("claude:default", "claude", "claude-sonnet-4-5"),
])
def test_each_route_answers_non_streaming(client: openai.OpenAI, demo: Any, model: str, backend: str,
                                          upstream_model: str) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "Explain how TCP slow start works"}])
    completion = raw.parse()
    assert completion.model.startswith(upstream_model)
    assert "TCP slow start" in (completion.choices[0].message.content or "")
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert raw.headers["x-router-route"] == model
    assert float(raw.headers["x-router-cost-usd"]) > 0
    router = completion.model_extra["router"]
    assert router["route"] == model and router["request_id"] == raw.headers["x-router-request-id"]
    assert router["cost_usd"] > 0 and router["fallbacks"] == 0
    assert demo.stats(backend)["requests"] >= 1


def test_kimi_modes_map_to_vllm_parameters(client: openai.OpenAI, demo: Any) -> None:
    instant = client.chat.completions.create(model="kimi:instant", messages=[{"role": "user", "content": "Hi"}])
    sent = _last_body(demo, "kimi")
    assert sent["chat_template_kwargs"] == {"thinking": False}
    assert sent["temperature"] == 0.6 and sent["top_p"] == 0.95
    assert "router" not in sent
    assert getattr(instant.choices[0].message, "reasoning_content", None) is None

    thinking = client.chat.completions.create(model="kimi:thinking", temperature=0.3,
                                              messages=[{"role": "user", "content": "Prove that 2+2=4"}])
    sent = _last_body(demo, "kimi")
    assert sent["chat_template_kwargs"] == {"thinking": True}
    assert sent["temperature"] == 0.3, "the client's own temperature wins over the mode default"
    assert thinking.choices[0].message.model_extra.get("reasoning_content")


def test_newer_vllm_reasoning_field_is_returned_as_reasoning_content(client: openai.OpenAI, demo: Any) -> None:
    demo.set_behavior("kimi", reasoning_field="reasoning")
    answer = client.chat.completions.create(model="kimi:thinking", messages=[{"role": "user", "content": "Why?"}])
    extra = answer.choices[0].message.model_extra
    assert extra.get("reasoning_content") and "reasoning" not in extra
    chunks = list(client.chat.completions.create(model="kimi:thinking", stream=True,
                                                 messages=[{"role": "user", "content": "Why?"}]))
    deltas = [c.choices[0].delta.model_extra for c in chunks if c.choices]
    assert any(d.get("reasoning_content") for d in deltas)
    assert not any("reasoning" in d for d in deltas)


def test_moonshot_flavour_disables_thinking_its_own_way(full_gateway: Gateway) -> None:
    full_gateway.client().chat.completions.create(model="kimi-api:instant",
                                                  messages=[{"role": "user", "content": "Hi"}])
    sent = _last_body(full_gateway.demo, "kimi-api")
    assert sent["thinking"] == {"type": "disabled"} and "chat_template_kwargs" not in sent
    assert sent["model"] == "kimi-k2.5"


@pytest.mark.parametrize("model", ["kimi:instant", "kimi:thinking", "gpt:default", "claude:default"])
def test_streaming_with_usage_and_router_chunk(client: openai.OpenAI, model: str) -> None:
    stream = client.chat.completions.create(model=model, stream=True, stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": "Describe a sunrise"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "sunrise" in text
    final = chunks[-1]  # asked for with include_usage: no choices, usage and the router object
    assert final.choices == [] and final.usage is not None and final.usage.completion_tokens > 0
    assert final.model_extra["router"]["route"] == model
    assert final.model_extra["router"]["cost_usd"] > 0
    finish = chunks[-2]  # the router object also rides on the chunk that says why the answer ended
    assert finish.choices[0].finish_reason == "stop" and finish.model_extra["router"] == final.model_extra["router"]
    assert all(c.choices for c in chunks[:-1]) and all(c.usage is None for c in chunks[:-1])
    reasoning = [c.choices[0].delta.model_extra.get("reasoning_content") for c in chunks if c.choices]
    assert any(reasoning) == (model == "kimi:thinking")


def test_stream_without_include_usage_has_no_usage(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="kimi:instant", stream=True,
                                                 messages=[{"role": "user", "content": "Hello"}]))
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].model_extra["router"]["route"] == "kimi:instant"
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize(("model", "tools"), [
    *((m, t) for m in ("kimi:instant", "kimi:thinking", "gpt:default", "claude:default") for t in (False, True)),
    ("auto:swarm", False)])  # swarm refuses tools
def test_the_tutorial_stream_loop_never_meets_an_empty_chunk(client: openai.OpenAI, model: str, tools: bool) -> None:
    """``for chunk in stream: chunk.choices[0]`` (most tutorials) works without include_usage, on every path."""
    extra: dict[str, Any] = {"tools": [WEATHER_TOOL]} if tools else {}
    content = "What's the weather in Paris right now?" if tools else "Compare these databases: PostgreSQL, MySQL"
    stream = client.chat.completions.create(model=model, stream=True, messages=[{"role": "user", "content": content}],
                                            **extra)
    seen = []
    for chunk in stream:
        seen.append((chunk.id, chunk.model, chunk.created))
        choice = chunk.choices[0]  # raises IndexError on an empty-choices chunk
        assert chunk.usage is None
        last = chunk, choice
    assert len(set(seen)) == 1, "one id, model and created across every chunk of a stream"
    chunk, choice = last
    assert choice.finish_reason in ("stop", "tool_calls")
    assert chunk.model_extra["router"]["route"] == ("swarm" if model == "auto:swarm" else model)


def test_sse_framing_is_strict(gateway: Gateway) -> None:
    with httpx.stream("POST", f"{gateway.base_url}/chat/completions", timeout=10,
                      json={"model": "kimi:instant", "stream": True,
                            "messages": [{"role": "user", "content": "Hello"}]}) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["x-router-route"] == "kimi:instant"
        raw = b"".join(resp.iter_bytes())
    events = raw.split(b"\n\n")
    assert events[-1] == b"" and events[-2] == b"data: [DONE]"
    for event in events[:-2]:
        assert event.startswith(b"data: ")
        json.loads(event[6:])


@pytest.mark.parametrize("model", ["kimi:agent", "gpt:default", "claude:default"])
def test_tool_call_round_trip(client: openai.OpenAI, model: str) -> None:
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Paris right now?"}]
    first = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 18, "sky": "clear"}'}]
    second = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content


def test_streamed_tool_call(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="kimi:agent", stream=True, tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "Weather in Oslo?"}]))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls and calls[0].function.name == "get_weather"
    args = "".join(tc.function.arguments or "" for tc in calls)
    assert "city" in json.loads(args)


def test_auto_with_tools_goes_to_agent_mode(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto", tools=[WEATHER_TOOL], messages=[{"role": "user", "content": "Weather in Rome?"}])
    assert raw.headers["x-router-task-type"] == "agentic"
    assert raw.headers["x-router-route"] == "kimi:agent"


def test_image_parts_route_to_a_vision_capable_backend(client: openai.OpenAI, demo: Any) -> None:
    content: Any = [{"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": PIXEL}}]
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": content}])
    assert raw.headers["x-router-task-type"] == "vision"
    assert raw.headers["x-router-route"].startswith("kimi:")
    assert "image" in (raw.parse().choices[0].message.content or "")
    sent = _last_body(demo, "kimi")
    assert sent["messages"][0]["content"][1]["type"] == "image_url"


def test_video_parts_only_go_where_video_is_accepted(full_gateway: Gateway, client: openai.OpenAI) -> None:
    content: Any = [{"type": "text", "text": "Summarise this clip"},
                    {"type": "video_url", "video_url": {"url": "https://example.invalid/clip.mp4"}}]
    raw = full_gateway.client().chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": content}])
    # The model card: video is experimental on vLLM/SGLang, served by Moonshot's API only.
    assert raw.headers["x-router-route"].startswith("kimi-api:")
    with pytest.raises(openai.APIStatusError):  # without Moonshot's API no route takes video
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": content}])


def test_response_format_and_unknown_fields_pass_through(client: openai.OpenAI, demo: Any) -> None:
    client.chat.completions.create(
        model="kimi:instant", messages=[{"role": "user", "content": "Give me JSON"}],
        response_format={"type": "json_object"}, seed=7, user="u-1", metadata={"team": "a"},
        extra_body={"vendor_extra": {"x": 1}, "top_k": 20})
    sent = _last_body(demo, "kimi")
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["vendor_extra"] == {"x": 1} and sent["top_k"] == 20 and sent["seed"] == 7


def test_auto_fills_every_router_header(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "What is the capital of Australia?"}])
    for name in ("x-router-request-id", "x-router-route", "x-router-task-type", "x-router-confidence",
                 "x-router-mode", "x-router-estimated-cost-usd", "x-router-estimated-latency-ms",
                 "x-router-fallbacks", "x-router-decision-ms", "x-router-cost-usd"):
        assert raw.headers.get(name), name
    router = raw.parse().model_extra["router"]
    assert router["task_type"] == raw.headers["x-router-task-type"]
    assert 0 < router["confidence"] <= 1


def test_forced_mode_and_task_type(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto:thinking", messages=[{"role": "user", "content": "What is 2+2?"}])
    assert raw.headers["x-router-route"] in ("kimi:thinking", "gpt:default", "gpt-mini:default", "claude:default")
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hello"}],
        extra_headers={"X-Router-Task-Type": "coding", "X-Router-Mode": "instant"})
    assert raw.headers["x-router-task-type"] == "coding"
    assert raw.headers["x-router-confidence"] == "1.0000"
    assert raw.headers["x-router-route"] in ("kimi:instant", "gpt:default", "gpt-mini:default", "claude:default")


def test_aliases_resolve_to_routes(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="kimi-k2.5-instant", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-router-route"] == "kimi:instant"


def test_legacy_functions_count_as_tools(gateway: Gateway) -> None:
    resp = httpx.post(f"{gateway.base_url}/chat/completions", timeout=10, json={
        "model": "auto", "messages": [{"role": "user", "content": "Weather in Lima?"}],
        "functions": [WEATHER_TOOL["function"]]})
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-router-task-type"] == "agentic"
