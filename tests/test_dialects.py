"""Each upstream gets the request its published API accepts (router/dispatch/dialects.py).

A recording upstream (tests/support/capture.py) stands in for every backend of the packaged policy;
the tests drive the gateway with the official SDK and assert the exact body it sent, per backend
kind x mode, for a matrix of client requests. The vendors' own rules (router/demo/vendor_rules.py,
written independently of the table) then check that a request carrying every common OpenAI
parameter reaches each backend in a form it accepts, and the demo gateway, which enforces those
rules, answers it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from router.demo import vendor_rules
from router.dispatch.dialects import ANTHROPIC_MIN_THINKING_BUDGET
from tests.conftest import Gateway, default_policy, start_gateway
from tests.support.capture import CaptureUpstream

HI = [{"role": "user", "content": "Hi"}]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
PIXEL = "data:image/png;base64,iVBORw0KGgo="
VIDEO = {"type": "video_url", "video_url": {"url": "https://example.invalid/clip.mp4"}}
# A request with every common OpenAI parameter a client may send.
EVERY_PARAM: dict[str, Any] = {
    "temperature": 0.7, "top_p": 0.9, "max_tokens": 300, "seed": 7, "stop": ["END"], "presence_penalty": 0.1,
    "logprobs": True, "tools": [WEATHER], "response_format": {"type": "json_object"}, "reasoning_effort": "low",
    "n": 1}


@pytest.fixture(scope="module")
def capture() -> Iterator[CaptureUpstream]:
    upstream = CaptureUpstream().start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def gw(capture: CaptureUpstream, classifier: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = start_gateway(None, default_policy(), Path(tmp_path_factory.mktemp("dialects")),  # type: ignore[arg-type]
                            classifier=classifier, env=capture.backend_env())
    yield gateway
    gateway.stop()


@pytest.fixture
def client(gw: Gateway) -> openai.OpenAI:
    return gw.client()


def send(client: openai.OpenAI, capture: CaptureUpstream, model: str, *, headers: dict[str, str] | None = None,
         **params: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the body the upstream got, the answer's router object)."""
    params.setdefault("messages", HI)
    answer = client.chat.completions.create(model=model, extra_headers=headers, **params)
    return capture.last["body"], answer.model_extra["router"]


# --- Kimi on vLLM / SGLang / NIM ---------------------------------------------------------------
def test_kimi_engine_instant_uses_the_chat_template_and_recommended_sampling(client: openai.OpenAI,
                                                                             capture: CaptureUpstream) -> None:
    body, router = send(client, capture, "kimi:instant")
    assert body == {"model": "moonshotai/Kimi-K2.5", "messages": HI, "temperature": 0.6, "top_p": 0.95,
                    "chat_template_kwargs": {"thinking": False}}
    assert "adjusted_params" not in router


def test_kimi_engine_keeps_the_clients_sampling_and_engine_extras(client: openai.OpenAI,
                                                                  capture: CaptureUpstream) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                             {"type": "image_url", "image_url": {"url": PIXEL}}]}]
    body, _ = send(client, capture, "kimi:thinking", messages=messages, temperature=0.3,
                   max_completion_tokens=50, extra_body={"top_k": 20, "thinking": {"type": "enabled"}})
    assert body == {"model": "moonshotai/Kimi-K2.5", "messages": messages, "temperature": 0.3, "top_p": 0.95,
                    "top_k": 20, "max_tokens": 50, "chat_template_kwargs": {"thinking": True}}


def test_kimi_engine_stream_asks_for_usage(client: openai.OpenAI, capture: CaptureUpstream) -> None:
    list(client.chat.completions.create(model="kimi:agent", messages=HI, tools=[WEATHER], stream=True))
    body = capture.last["body"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["chat_template_kwargs"] == {"thinking": True} and body["tools"] == [WEATHER]


# --- Kimi on Moonshot's API --------------------------------------------------------------------
def test_moonshot_takes_its_model_id_and_fixes_sampling(client: openai.OpenAI, capture: CaptureUpstream) -> None:
    body, router = send(client, capture, "kimi-api:thinking", temperature=0.3, presence_penalty=0.5, n=1)
    assert body == {"model": "kimi-k2.5", "messages": HI, "thinking": {"type": "enabled"}}
    assert router["adjusted_params"] == ["presence_penalty", "temperature"]
    assert capture.last["headers"]["Authorization"] == "Bearer sk-m"
    body, _ = send(client, capture, "kimi-api:instant", messages=[{"role": "user", "content": [
        {"type": "text", "text": "Summarise"}, VIDEO]}])
    assert body["thinking"] == {"type": "disabled"} and body["messages"][0]["content"][1] == VIDEO


def test_moonshot_replayed_tool_call_turn_keeps_a_reasoning_content(client: openai.OpenAI,
                                                                    capture: CaptureUpstream) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
    turns = [{"role": "user", "content": "Weather in Oslo?"},
             {"role": "assistant", "content": None, "tool_calls": [call]},
             {"role": "tool", "tool_call_id": "call_1", "content": "4 C"}]
    body, _ = send(client, capture, "kimi-api:agent", messages=turns, tools=[WEATHER])
    assert body["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [call],
                                   "reasoning_content": "."}
    assert vendor_rules.moonshot_refusal(body) is None
    kept = [turns[0], {**turns[1], "reasoning_content": "I should look it up."}, turns[2]]
    body, _ = send(client, capture, "kimi-api:agent", messages=kept, tools=[WEATHER])
    assert body["messages"][1]["reasoning_content"] == "I should look it up."
    body, _ = send(client, capture, "kimi-api:instant", messages=turns)
    assert "reasoning_content" not in body["messages"][1], "instant mode needs no reasoning"


# --- OpenAI GPT-5 family -----------------------------------------------------------------------
def test_gpt52_gets_max_completion_tokens_and_reasons_by_default(client: openai.OpenAI,
                                                                 capture: CaptureUpstream) -> None:
    body, router = send(client, capture, "gpt:default", max_tokens=100, temperature=0.3, stop=["x"],
                        extra_body={"top_k": 5, "chat_template_kwargs": {"thinking": False}})
    assert body == {"model": "gpt-5.2", "messages": HI, "max_completion_tokens": 100, "reasoning_effort": "medium"}
    assert router["adjusted_params"] == ["chat_template_kwargs", "stop", "temperature", "top_k"]
    assert capture.last["headers"]["Authorization"] == "Bearer sk-o"


def test_gpt52_takes_sampling_at_reasoning_effort_none(client: openai.OpenAI, capture: CaptureUpstream) -> None:
    body, router = send(client, capture, "gpt:default", reasoning_effort="none", temperature=0.3, top_p=0.5)
    # No client limit: the $1 default ceiling caps the output (GPT-5.2's 128k tokens would cost more).
    assert 0 < body.pop("max_completion_tokens") < 128000
    assert body == {"model": "gpt-5.2", "messages": HI, "reasoning_effort": "none", "temperature": 0.3,
                    "top_p": 0.5}
    assert "adjusted_params" not in router


def test_gpt5_mini_instant_reasons_minimally_and_maps_effort(client: openai.OpenAI,
                                                              capture: CaptureUpstream) -> None:
    body, _ = send(client, capture, "gpt-mini:default", headers={"X-Router-Mode": "instant"}, max_tokens=64)
    assert body == {"model": "gpt-5-mini", "messages": HI, "max_completion_tokens": 64,
                    "reasoning_effort": "minimal"}
    body, router = send(client, capture, "gpt-mini:default", reasoning_effort="none", temperature=1.2)
    assert body["reasoning_effort"] == "minimal" and "temperature" not in body
    assert router["adjusted_params"] == ["reasoning_effort", "temperature"]


# --- Anthropic Claude --------------------------------------------------------------------------
def test_claude_gets_a_messages_request_with_temperature_in_range(client: openai.OpenAI,
                                                                  capture: CaptureUpstream) -> None:
    body, router = send(client, capture, "claude:default", temperature=1.5, top_p=0.5, seed=3)
    assert capture.last["path"] == "/v1/messages"
    assert body == {"model": "claude-sonnet-4-5", "max_tokens": 64000,
                    "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
                    "temperature": 1.0}
    assert router["adjusted_params"] == ["seed", "temperature", "top_p"]
    headers = capture.last["headers"]
    assert headers["x-api-key"] == "sk-a" and headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in headers


def test_claude_thinking_budget_comes_from_the_latency_budget(client: openai.OpenAI,
                                                              capture: CaptureUpstream) -> None:
    body, router = send(client, capture, "claude:default", headers={"X-Router-Mode": "thinking"},
                        temperature=0.5, max_tokens=20000, extra_body={"router": {"latency_budget_ms": 60000}})
    budget = body["thinking"]["budget_tokens"]
    assert body["thinking"]["type"] == "enabled"
    # 60 s left x 55 tok/s x half of it, within [1024, max_tokens)
    assert ANTHROPIC_MIN_THINKING_BUDGET <= budget < 20000 and budget <= 60 * 55 // 2
    assert "temperature" not in body and router["adjusted_params"] == ["temperature"]
    assert vendor_rules.anthropic_refusal(body) is None


def test_claude_translates_system_images_tools_and_tool_results(client: openai.OpenAI,
                                                                capture: CaptureUpstream) -> None:
    call = {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Weather here?"},
                                             {"type": "image_url", "image_url": {"url": PIXEL}}]},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "4 C"}]
    body, _ = send(client, capture, "claude:default", messages=messages, tools=[WEATHER], tool_choice="required",
                   stop="END", parallel_tool_calls=False)
    assert body == {
        "model": "claude-sonnet-4-5", "max_tokens": 64000, "system": "Be brief.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather here?"},
                                         {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                      "data": "iVBORw0KGgo="}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                               "input": {"city": "Oslo"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "4 C"}]}],
        "stop_sequences": ["END"],
        "tools": [{"name": "get_weather", "description": "Current weather for a city",
                   "input_schema": WEATHER["function"]["parameters"]}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True}}


def test_claude_structured_output_uses_output_format(client: openai.OpenAI, capture: CaptureUpstream) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    body, _ = send(client, capture, "claude:default",
                   response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}})
    assert body["output_format"] == {"type": "json_schema", "schema": schema}
    assert "structured-outputs" in capture.last["headers"]["anthropic-beta"]
    body, _ = send(client, capture, "claude:default", response_format={"type": "json_object"})
    assert body["tool_choice"] == {"type": "tool", "name": "json_answer"}


def test_claude_stream_is_requested_natively(client: openai.OpenAI, capture: CaptureUpstream) -> None:
    chunks = list(client.chat.completions.create(model="claude:default", messages=HI, stream=True,
                                                 stream_options={"include_usage": True}))
    body = capture.last["body"]
    assert body["stream"] is True and "stream_options" not in body
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "ok"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 2


# --- every common parameter, every backend -------------------------------------------------------
ROUTES = ["kimi:instant", "kimi:thinking", "kimi:agent", "kimi-api:instant", "kimi-api:thinking", "kimi-api:agent",
          "gpt:default", "gpt-mini:default", "claude:default"]


@pytest.mark.parametrize("route", ROUTES)
def test_every_common_parameter_reaches_each_backend_in_an_accepted_form(client: openai.OpenAI,
                                                                         capture: CaptureUpstream,
                                                                         route: str) -> None:
    body, _ = send(client, capture, route, **EVERY_PARAM)
    if route.startswith("gpt"):
        assert vendor_rules.openai_refusal(body) is None, body
    elif route.startswith("kimi-api"):
        assert vendor_rules.moonshot_refusal(body) is None, body
    elif route.startswith("claude"):
        assert vendor_rules.anthropic_refusal(body) is None, body
    else:  # vLLM takes the OpenAI set plus its extras: everything arrives
        assert {k: body[k] for k in ("temperature", "top_p", "seed", "stop", "logprobs")} == {
            k: EVERY_PARAM[k] for k in ("temperature", "top_p", "seed", "stop", "logprobs")}
    for name in ("chat_template_kwargs", "thinking"):
        if route.startswith(("gpt", "claude")):
            assert name not in body or (route.startswith("claude") and name == "thinking")


@pytest.mark.parametrize("route", ROUTES)
def test_every_common_parameter_is_answered_by_the_strict_demo(full_gateway: Gateway, route: str) -> None:
    """The demo upstreams refuse what the vendors refuse: no 400 reaches the client."""
    answer = full_gateway.client().chat.completions.create(model=route, messages=[
        {"role": "user", "content": "What's the weather in Paris?"}], **EVERY_PARAM)
    assert answer.choices[0].finish_reason in ("stop", "tool_calls")
    assert answer.model_extra["router"]["route"] == route


def test_a_refused_parameter_would_have_been_a_400(full_gateway: Gateway) -> None:
    """The strict demo really refuses: sent as-is, GPT-5.2 rejects max_tokens (the check can fail)."""
    import httpx

    with httpx.Client(timeout=10) as http:
        r = http.post(f"{full_gateway.demo.base_url('gpt')}/chat/completions",
                      json={"model": "gpt-5.2", "messages": HI, "max_tokens": 10})
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"
    assert json.loads(r.text)["error"]["code"] == "unsupported_parameter"
