"""The demo upstreams over real HTTP on loopback, driven by the `openai` SDK and raw httpx."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from router.demo import DemoBehavior, DemoServerSpec, DemoUpstreams

FAST = DemoBehavior(ttft_ms=0, tokens_per_s=0)
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["location", "unit"],
        },
    },
}
QUESTION = "How should I choose between PostgreSQL and MongoDB for a small analytics project?"


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoUpstreams]:
    specs = [
        DemoServerSpec("kimi", "vllm", behavior=FAST),
        DemoServerSpec("gpt", "openai", behavior=FAST),
        DemoServerSpec("claude", "anthropic", behavior=FAST),
        DemoServerSpec("sg", "sglang", behavior=FAST),
        DemoServerSpec("locked", "vllm", api_key="sk-demo-secret", behavior=FAST),
    ]
    with DemoUpstreams(specs) as upstreams:
        yield upstreams


@pytest.fixture(autouse=True)
def _fresh(demo: DemoUpstreams) -> None:
    demo.reset()


def client(demo: DemoUpstreams, name: str = "kimi", **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=demo.base_url(name), api_key="sk-test", max_retries=0, **kwargs)


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def sse_frames(text: str) -> list[str]:
    assert text.endswith("\n\n")
    return [frame.removeprefix("data: ") for frame in text.split("\n\n") if frame]


def chat(demo: DemoUpstreams, name: str, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{demo.base_url(name)}/chat/completions", json=body, **kwargs)


# -- modes and reasoning -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("extra", "tools", "mode", "has_reasoning"),
    [
        ({}, False, "thinking", True),
        ({"chat_template_kwargs": {"thinking": False}}, False, "instant", False),
        ({"thinking": {"type": "disabled"}}, False, "instant", False),
        ({}, True, "agent", True),
    ],
)
def test_kimi_modes_and_reasoning(demo: DemoUpstreams, extra: dict[str, Any], tools: bool, mode: str,
                                  has_reasoning: bool) -> None:
    tool_args: dict[str, Any] = {"tools": [WEATHER_TOOL], "tool_choice": "none"} if tools else {}
    reply = client(demo).chat.completions.create(
        model="moonshotai/Kimi-K2.5", messages=user(QUESTION), extra_body=extra, **tool_args
    )
    message = reply.choices[0].message
    raw = message.model_dump()
    assert ("reasoning_content" in raw) is has_reasoning
    assert f"Kimi K2.5 ({mode} mode via demo vLLM)" in (message.content or "")
    assert "PostgreSQL" in (message.content or "")
    usage = reply.usage
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.completion_tokens_details is not None
    assert ((usage.completion_tokens_details.reasoning_tokens or 0) > 0) is has_reasoning
    assert demo.stats("kimi")["by_mode"] == {mode: 1}


def test_reasoning_field_name_is_configurable(demo: DemoUpstreams) -> None:
    demo.set_behavior("kimi", reasoning_field="reasoning")
    message = chat(demo, "kimi", {"messages": user("Why is the sky blue?")}).json()["choices"][0]["message"]
    assert "reasoning" in message and "reasoning_content" not in message


def test_openai_kind_has_no_reasoning_and_default_mode(demo: DemoUpstreams) -> None:
    reply = client(demo, "gpt").chat.completions.create(model="gpt-5.2", messages=user(QUESTION))
    assert "reasoning_content" not in reply.choices[0].message.model_dump()
    assert "gpt-5.2 (via demo OpenAI)" in (reply.choices[0].message.content or "")
    assert reply.model == "gpt-5.2"
    assert demo.stats("gpt")["by_mode"] == {"default": 1}


def test_answers_are_deterministic_and_grow_with_the_question(demo: DemoUpstreams) -> None:
    body = {"messages": user(QUESTION), "chat_template_kwargs": {"thinking": False}}
    first, second = (chat(demo, "kimi", body).json()["choices"][0]["message"]["content"] for _ in range(2))
    assert first == second
    long_question = QUESTION + " " + " ".join(f"Consider constraint{i} carefully." for i in range(30))
    longer = chat(demo, "kimi", {**body, "messages": user(long_question)}).json()
    assert len(longer["choices"][0]["message"]["content"]) > len(first)


def test_images_and_video_are_accepted_and_mentioned(demo: DemoUpstreams) -> None:
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}},
    ]
    body = {"messages": [{"role": "user", "content": content}], "chat_template_kwargs": {"thinking": False}}
    text = chat(demo, "kimi", body).json()["choices"][0]["message"]["content"]
    assert "I see 1 image and 1 video" in text


def test_max_tokens_truncates_with_length_and_stop_is_honoured(demo: DemoUpstreams) -> None:
    body = {"messages": user(QUESTION), "chat_template_kwargs": {"thinking": False}, "max_tokens": 5}
    choice = chat(demo, "kimi", body).json()["choices"][0]
    assert choice["finish_reason"] == "length" and len(choice["message"]["content"].split()) == 5
    body = {"messages": user(QUESTION), "chat_template_kwargs": {"thinking": False}, "stop": ["Kimi"]}
    choice = chat(demo, "kimi", body).json()["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["content"] == "Answer from "


# -- streaming -----------------------------------------------------------------------------------

def test_stream_framing_reasoning_then_content_and_include_usage(demo: DemoUpstreams) -> None:
    body = {"messages": user(QUESTION), "stream": True, "stream_options": {"include_usage": True}}
    response = chat(demo, "kimi", body)
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = sse_frames(response.text)
    assert frames[-1] == "[DONE]"
    chunks = [orjson.loads(f) for f in frames[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    kinds = [next(iter(c["choices"][0]["delta"])) for c in chunks[1:-2]]
    assert kinds[0] == "reasoning_content" and kinds[-1] == "content"
    assert kinds == sorted(kinds, key=lambda k: k == "content")  # all reasoning before any content
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[1:-1])
    whole = chat(demo, "kimi", {"messages": user(QUESTION)}).json()["choices"][0]["message"]["content"]
    assert streamed == whole


def test_stream_via_openai_sdk_without_usage(demo: DemoUpstreams) -> None:
    stream = client(demo).chat.completions.create(
        model="moonshotai/Kimi-K2.5", messages=user("Define entropy"), stream=True,
        extra_body={"chat_template_kwargs": {"thinking": False}},
    )
    chunks = list(stream)
    assert all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "instant mode" in text and chunks[-1].choices[0].finish_reason == "stop"


def test_pacing_follows_ttft_and_tokens_per_second(demo: DemoUpstreams) -> None:
    demo.set_behavior("gpt", ttft_ms=150, tokens_per_s=1000)
    started = time.monotonic()
    with httpx.stream("POST", f"{demo.base_url('gpt')}/chat/completions",
                      json={"model": "gpt-5.2", "messages": user("hi"), "stream": True}) as response:
        first_content = None
        for line in response.iter_lines():
            if '"content":"' in line and '"content":""' not in line and first_content is None:
                first_content = time.monotonic() - started
    assert first_content is not None and 0.14 <= first_content < 1.0


# -- tools ---------------------------------------------------------------------------------------

def test_tool_call_then_tool_result_turn(demo: DemoUpstreams) -> None:
    api = client(demo)
    messages: list[Any] = user("What's the weather in Tokyo right now?")
    reply = api.chat.completions.create(model="moonshotai/Kimi-K2.5", messages=messages, tools=[WEATHER_TOOL])
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.id.startswith("call_") and call.type == "function"
    assert orjson.loads(call.function.arguments) == {"location": "Tokyo", "unit": "c"}
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21, "sky": "clear"}'}]
    final = api.chat.completions.create(model="moonshotai/Kimi-K2.5", messages=messages, tools=[WEATHER_TOOL])
    assert final.choices[0].finish_reason == "stop"
    assert "get_weather" in (final.choices[0].message.content or "")
    assert "temp_c" in (final.choices[0].message.content or "")


def test_tool_choice_names_the_tool_and_streams_in_openai_delta_format(demo: DemoUpstreams) -> None:
    other: Any = {"type": "function", "function": {"name": "search", "parameters": {
        "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}
    stream = client(demo, "gpt").chat.completions.create(
        model="gpt-5.2", messages=user("Find papers on speculative decoding"), tools=[WEATHER_TOOL, other],
        tool_choice={"type": "function", "function": {"name": "search"}}, stream=True,
    )
    deltas = [c.choices[0].delta.tool_calls[0] for c in stream if c.choices and c.choices[0].delta.tool_calls]
    assert deltas[0].id and deltas[0].function and deltas[0].function.name == "search"
    arguments = "".join((d.function.arguments or "") if d.function else "" for d in deltas)
    assert len(deltas) > 2 and "speculative decoding" in orjson.loads(arguments)["query"]


# -- errors and auth -----------------------------------------------------------------------------

@pytest.mark.parametrize("body", [{"model": "x"}, {"messages": []}, {"messages": [{"content": "no role"}]}])
def test_invalid_bodies_get_openai_400(demo: DemoUpstreams, body: dict[str, Any]) -> None:
    response = chat(demo, "kimi", body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_bad_json_and_unknown_fields(demo: DemoUpstreams) -> None:
    response = httpx.post(f"{demo.base_url('kimi')}/chat/completions", content=b"{not json",
                          headers={"content-type": "application/json"})
    assert response.status_code == 400 and "error" in response.json()
    ok = chat(demo, "kimi", {"messages": user("hi"), "some_vendor_extra": {"x": 1}, "seed": 3})
    assert ok.status_code == 200


def test_api_key_is_required_when_configured_and_never_recorded(demo: DemoUpstreams) -> None:
    with pytest.raises(openai.AuthenticationError):
        client(demo, "locked").chat.completions.create(model="m", messages=user("hi"))
    good = openai.OpenAI(base_url=demo.base_url("locked"), api_key="sk-demo-secret", max_retries=0)
    assert good.chat.completions.create(model="m", messages=user("hi")).choices[0].message.content
    recorded = orjson.dumps(demo.stats("locked")["last_requests"])
    assert b"sk-demo-secret" not in recorded and b'"authorization":true' in recorded


# -- failure injection ---------------------------------------------------------------------------

def test_error_rate_is_exact_and_in_the_kinds_shape(demo: DemoUpstreams) -> None:
    demo.set_behavior("kimi", error_rate=0.5)
    statuses = [chat(demo, "kimi", {"messages": user("hi")}).status_code for _ in range(6)]
    assert statuses == [200, 500, 200, 500, 200, 500]
    demo.set_behavior("kimi", error_rate=1.0, error_status=503)
    with pytest.raises(openai.InternalServerError) as caught:
        client(demo).chat.completions.create(model="m", messages=user("hi"))
    assert caught.value.status_code == 503


def test_rate_limit_sends_retry_after(demo: DemoUpstreams) -> None:
    demo.set_behavior("gpt", rate_limit_rate=1.0, retry_after_s=7)
    response = chat(demo, "gpt", {"model": "gpt-5.2", "messages": user("hi")})
    assert response.status_code == 429 and response.headers["retry-after"] == "7"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert demo.stats("gpt")["injected"] == {"rate_limit": 1}


def test_fail_after_chunks_aborts_mid_stream(demo: DemoUpstreams) -> None:
    demo.set_behavior("kimi", fail_after_chunks=3, tokens_per_s=2000)
    body = {"messages": user(QUESTION), "stream": True}
    received = b""
    with pytest.raises(httpx.HTTPError), httpx.stream(
        "POST", f"{demo.base_url('kimi')}/chat/completions", json=body
    ) as response:
        for chunk in response.iter_bytes():
            received += chunk
    assert received.count(b"data: ") == 4  # the role chunk, then exactly three token chunks
    assert b"[DONE]" not in received


def test_timeout_hangs_until_the_client_gives_up_and_the_cancel_is_observed(demo: DemoUpstreams) -> None:
    demo.set_behavior("kimi", timeout_rate=1.0, hang_s=30)
    with pytest.raises(openai.APITimeoutError):
        client(demo, timeout=0.3).chat.completions.create(model="m", messages=user("hi"))
    deadline = time.monotonic() + 5
    while demo.stats("kimi")["cancelled"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    stats = demo.stats("kimi")
    assert stats["cancelled"] == 1 and stats["in_flight"] == 0 and stats["completed"] == 0


def test_disconnect_during_a_paced_stream_is_observed(demo: DemoUpstreams) -> None:
    demo.set_behavior("kimi", tokens_per_s=50)
    with httpx.stream("POST", f"{demo.base_url('kimi')}/chat/completions",
                      json={"messages": user(QUESTION), "stream": True}) as response:
        next(response.iter_lines())
    deadline = time.monotonic() + 5
    while demo.stats("kimi")["cancelled"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert demo.stats("kimi")["cancelled"] == 1


# -- control endpoints ---------------------------------------------------------------------------

def test_control_endpoints_merge_validate_and_reset(demo: DemoUpstreams) -> None:
    root = demo.base_url("kimi").removesuffix("/v1")
    merged = httpx.post(f"{root}/_demo/behavior", json={"ttft_ms": 5}).json()
    assert merged["ttft_ms"] == 5 and merged["tokens_per_s"] == 0
    bad = httpx.post(f"{root}/_demo/behavior", json={"ttft": 5})
    assert bad.status_code == 400 and "ttft_ms" in bad.json()["error"]
    chat(demo, "kimi", {"messages": user("hi")})
    assert httpx.get(f"{root}/_demo/stats").json()["requests"] == 1
    assert httpx.post(f"{root}/_demo/reset").json()["ttft_ms"] == 0
    assert httpx.get(f"{root}/_demo/stats").json()["requests"] == 0
    assert httpx.get(f"{root}/health").status_code == 200
    models = httpx.get(f"{demo.base_url('kimi')}/models").json()
    assert models["data"][0]["id"] == "moonshotai/Kimi-K2.5"


# -- Anthropic -----------------------------------------------------------------------------------

def messages_call(demo: DemoUpstreams, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    headers = {"x-api-key": "sk-ant", "anthropic-version": "2023-06-01"}
    return httpx.post(f"{demo.base_url('claude')}/v1/messages", json=body, headers=headers, **kwargs)


def anthropic_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.split("\n\n"):
        if block:
            event_line, data_line = block.split("\n")
            events.append((event_line.removeprefix("event: "), orjson.loads(data_line.removeprefix("data: "))))
    return events


def test_anthropic_message_shape(demo: DemoUpstreams) -> None:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 512, "system": [{"type": "text", "text": "Be brief."}],
            "messages": user(QUESTION)}
    data = messages_call(demo, body).json()
    assert data["type"] == "message" and data["id"].startswith("msg_") and data["role"] == "assistant"
    assert data["stop_reason"] == "end_turn" and data["stop_sequence"] is None
    assert data["content"][0]["type"] == "text"
    assert "claude-sonnet-4-5 (via demo Anthropic)" in data["content"][0]["text"]
    assert data["usage"]["input_tokens"] > 0 and data["usage"]["output_tokens"] > 0
    assert messages_call(demo, {**body, "max_tokens": 3}).json()["stop_reason"] == "max_tokens"


def test_anthropic_stream_event_sequence(demo: DemoUpstreams) -> None:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 512, "messages": user(QUESTION), "stream": True}
    events = anthropic_events(messages_call(demo, body).text)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert all(name == data["type"] for name, data in events)
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == messages_call(demo, {**body, "stream": False}).json()["content"][0]["text"]
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn" and events[-2][1]["usage"]["output_tokens"] > 0


def test_anthropic_tool_use_and_tool_result(demo: DemoUpstreams) -> None:
    tool = {"name": "get_weather", "description": "weather", "input_schema": WEATHER_TOOL["function"]["parameters"]}
    body: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 512, "tools": [tool],
                            "messages": user("Weather in Lisbon?")}
    data = messages_call(demo, body).json()
    assert data["stop_reason"] == "tool_use"
    use = data["content"][-1]
    assert use["type"] == "tool_use" and use["id"].startswith("toolu_") and use["input"]["location"] == "Lisbon"
    events = anthropic_events(messages_call(demo, {**body, "stream": True}).text)
    partial = "".join(d["delta"]["partial_json"] for n, d in events
                      if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta")
    assert orjson.loads(partial) == use["input"]
    body["messages"] = [*body["messages"], {"role": "assistant", "content": data["content"]},
                        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use["id"],
                                                      "content": "18C and windy"}]}]
    final = messages_call(demo, body).json()
    assert final["stop_reason"] == "end_turn" and "18C and windy" in final["content"][0]["text"]


def test_anthropic_thinking_block(demo: DemoUpstreams) -> None:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 2048, "messages": user(QUESTION),
            "thinking": {"type": "enabled", "budget_tokens": 1024}}
    data = messages_call(demo, body).json()
    assert [b["type"] for b in data["content"]] == ["thinking", "text"]
    assert demo.stats("claude")["by_mode"] == {"thinking": 1}


def test_anthropic_errors(demo: DemoUpstreams) -> None:
    missing = messages_call(demo, {"model": "claude-sonnet-4-5", "messages": user("hi")})
    assert missing.status_code == 400
    assert missing.json() == {"type": "error", "error": {"type": "invalid_request_error",
                                                        "message": missing.json()["error"]["message"]}}
    demo.set_behavior("claude", error_rate=1.0, error_status=529)
    overloaded = messages_call(demo, {"model": "claude-sonnet-4-5", "max_tokens": 9, "messages": user("hi")})
    assert overloaded.status_code == 529 and overloaded.json()["error"]["type"] == "overloaded_error"
    demo.set_behavior("claude", error_rate=0.0, rate_limit_rate=1.0)
    limited = messages_call(demo, {"model": "claude-sonnet-4-5", "max_tokens": 9, "messages": user("hi")})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    assert limited.json()["error"]["type"] == "rate_limit_error"


# -- swarm protocol ------------------------------------------------------------------------------

def swarm_call(demo: DemoUpstreams, role: str, text: str, history: list[dict[str, Any]] | None = None) -> str:
    messages = [{"role": "system", "content": f"You are the model-router swarm {role}."},
                *(history or []), *user(text)]
    body = {"messages": messages, "chat_template_kwargs": {"thinking": False}}
    return str(chat(demo, "kimi", body).json()["choices"][0]["message"]["content"])


def test_planner_makes_one_subtask_per_enumerated_item(demo: DemoUpstreams) -> None:
    items = [f"City number {i}" for i in range(1, 31)]
    text = "Write a two-line travel note for each of these cities:\n" + "\n".join(f"- {i}" for i in items)
    plan = orjson.loads(swarm_call(demo, "planner", text))
    subtasks = plan["subtasks"]
    assert [s["id"] for s in subtasks] == [f"t{i}" for i in range(1, 31)]
    assert all(item in s["instruction"] and "travel note" in s["instruction"]
               for item, s in zip(items, subtasks, strict=True))
    assert all(s["depends_on"] == [] for s in subtasks)
    assert demo.stats("kimi")["by_role"] == {"planner": 1}


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("Compare these databases: PostgreSQL, MySQL, SQLite and DuckDB", 4),
        ("1. Summarise Dune\n2) Summarise Emma\n3. Summarise Ulysses", 3),
        ("What is TCP? What is UDP? Why does QUIC exist?", 3),
        ("请比较以下城市：北京、上海、广州", 3),
        ("Explain how a hash map works", 1),
        ("Plan this request.\n<request>Review: a.py, b.py, c.py</request>\nReply with JSON: x, y", 3),
    ],
)
def test_planner_item_styles(demo: DemoUpstreams, text: str, count: int) -> None:
    assert len(orjson.loads(swarm_call(demo, "planner", text))["subtasks"]) == count


def test_planner_cycle_and_bad_plan_triggers(demo: DemoUpstreams) -> None:
    cyclic = orjson.loads(swarm_call(demo, "planner", "DEMO_CYCLE Review: alpha, beta, gamma"))["subtasks"]
    assert cyclic[0]["depends_on"] == ["t3"] and cyclic[-1]["depends_on"] == ["t1"]
    request = "DEMO_BAD_PLAN Summarise: alpha, beta"
    bad = swarm_call(demo, "planner", request)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(bad)
    repair = [{"role": "user", "content": request}, {"role": "assistant", "content": bad}]
    fixed = orjson.loads(swarm_call(demo, "planner", "Your reply was not valid JSON; reply with the plan only.",
                                    history=repair))
    assert [s["instruction"] for s in fixed["subtasks"]] == ["Summarise — only this item: alpha",
                                                              "Summarise — only this item: beta"]


def test_worker_and_aggregator(demo: DemoUpstreams) -> None:
    worker = swarm_call(demo, "worker", "Write a two-line travel note for Lisbon.")
    assert "Lisbon" in worker and "instant mode" in worker
    sections = "Travel notes\n\n### t2: Porto\nPorto is hilly.\n\n### t1: Lisbon\nLisbon has trams.\n"
    merged = swarm_call(demo, "aggregator", sections)
    assert merged.index("### t2: Porto") < merged.index("### t1: Lisbon")
    assert "Lisbon has trams." in merged and "2 agent results" in merged


# -- engine metrics ------------------------------------------------------------------------------

def metric_values(demo: DemoUpstreams, name: str) -> dict[str, float]:
    url = demo.metrics_url(name)
    assert url is not None
    values = {}
    for family in text_string_to_metric_families(httpx.get(url).text):
        for sample in family.samples:
            values[sample.name] = sample.value
    return values


def test_vllm_and_sglang_metrics_parse(demo: DemoUpstreams) -> None:
    demo.set_behavior("kimi", queue_waiting=4, kv_cache_usage=0.25)
    chat(demo, "kimi", {"messages": user("hi"), "stream": True})
    vllm = metric_values(demo, "kimi")
    assert vllm["vllm:num_requests_waiting"] == 4 and vllm["vllm:num_requests_running"] == 0
    assert vllm["vllm:kv_cache_usage_perc"] == 0.25 and vllm["vllm:time_to_first_token_seconds_count"] == 1
    demo.set_behavior("sg", queue_waiting=2, kv_cache_usage=0.5)
    sglang = metric_values(demo, "sg")
    assert sglang["sglang:num_queue_reqs"] == 2 and sglang["sglang:num_running_reqs"] == 0
    assert sglang["sglang:token_usage"] == 0.5
    assert demo.metrics_url("gpt") is None


def test_requests_beyond_max_num_seqs_wait(demo: DemoUpstreams) -> None:
    demo.set_behavior("kimi", max_num_seqs=1, ttft_ms=400)
    threads = [threading.Thread(target=chat, args=(demo, "kimi", {"messages": user("hi")}))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 2
    while demo.stats("kimi")["in_flight"] < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    values = metric_values(demo, "kimi")
    assert values["vllm:num_requests_running"] == 1 and values["vllm:num_requests_waiting"] == 2
    for thread in threads:
        thread.join()
    assert demo.stats("kimi")["max_in_flight"] == 3 and demo.stats("kimi")["completed"] == 3


# -- the command line ----------------------------------------------------------------------------

def test_python_dash_m_prints_the_url_first() -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen([sys.executable, "-m", "router.demo", "--kind", "anthropic", "--port", "0",
                                "--ttft-ms", "0"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and not url.endswith("/v1")
        response = httpx.post(f"{url}/v1/messages", json={"model": "claude-haiku-4-5", "max_tokens": 50,
                                                          "messages": user("hi")})
        assert response.json()["stop_reason"] in ("end_turn", "max_tokens")
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_anthropic_auth_images_and_planner(demo: DemoUpstreams) -> None:
    locked = DemoUpstreams([DemoServerSpec("vault", "anthropic", api_key="sk-ant-right", behavior=FAST)])
    with locked:
        url = f"{locked.base_url('vault')}/v1/messages"
        body = {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": user("hi")}
        wrong = httpx.post(url, json=body, headers={"x-api-key": "sk-ant-wrong"})
        assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
        assert httpx.post(url, json=body, headers={"x-api-key": "sk-ant-right"}).status_code == 200
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    content = [image, {"type": "text", "text": "Describe this chart"}]
    body = {"model": "claude-sonnet-4-5", "max_tokens": 512, "messages": [{"role": "user", "content": content}]}
    assert "I see 1 image" in messages_call(demo, body).json()["content"][0]["text"]
    broken = {"type": "image", "source": {"type": "base64"}}
    assert messages_call(demo, {**body, "messages": [{"role": "user", "content": [broken]}]}).status_code == 400
    plan = messages_call(demo, {"model": "claude-sonnet-4-5", "max_tokens": 4096,
                                "system": "You are the model-router swarm planner.",
                                "messages": user("Translate: hello, goodbye, thanks")}).json()
    assert len(orjson.loads(plan["content"][0]["text"])["subtasks"]) == 3


def test_response_format_json_object(demo: DemoUpstreams) -> None:
    body = {"model": "gpt-5.2", "messages": user("Name a colour"), "response_format": {"type": "json_object"}}
    content = chat(demo, "gpt", body).json()["choices"][0]["message"]["content"]
    assert "Name a colour" in orjson.loads(content)["answer"]
