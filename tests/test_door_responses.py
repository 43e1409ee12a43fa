"""``/v1/responses`` end to end with OpenAI's own SDK, unchanged (``responses.create`` / ``.stream``,
tools with ``previous_response_id``, reasoning, stored responses) and the ``openai-agents`` SDK running
an agent with one function tool — through the real gateway to the demo upstreams of every backend;
errors in OpenAI's shape."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Gateway, default_policy
from tests.support import door_conformance

WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather for a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
ROUTES = ["auto", "kimi:instant", "gpt:default", "claude:default"]


@pytest.mark.parametrize("model", ROUTES)
def test_create_on_every_route(client: openai.OpenAI, model: str) -> None:
    raw = client.responses.with_raw_response.create(model=model, input="Describe a sunrise",
                                                    instructions="You are terse.")
    response = raw.parse()
    assert response.object == "response" and response.status == "completed" and response.id.startswith("resp_")
    assert "sunrise" in response.output_text
    assert response.usage is not None and response.usage.output_tokens > 0
    router = (response.model_extra or {})["router"]
    assert raw.headers["x-router-route"] == router["route"] and router["cost_usd"] > 0
    if model != "auto":
        assert router["route"] == model


@pytest.mark.parametrize("model", [*ROUTES, "auto:swarm"])
def test_stream_helper(client: openai.OpenAI, model: str) -> None:
    prompt = "Compare these databases: PostgreSQL, MySQL" if model == "auto:swarm" else "Describe a sunrise"
    with client.responses.stream(model=model, input=prompt) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text and text == final.output_text
    assert final.usage is not None and final.usage.output_tokens > 0
    router = (final.model_extra or {})["router"]
    assert router["route"] == {"auto": router["route"], "auto:swarm": "swarm"}.get(model, model)


CASES = [(m, False) for m in ("kimi:instant", "kimi:thinking", "gpt:default", "claude:default", "auto:swarm")] + [
    (m, True) for m in ("kimi:agent", "gpt:default", "claude:default")]


@pytest.mark.parametrize(("model", "tools"), CASES)
def test_every_stream_and_response_is_strictly_openais(gateway: Gateway, model: str, tools: bool) -> None:
    """Over HTTP, every event parses as the SDK's published type (nothing unknown, nothing dropped)."""
    prompt = ("What's the weather in Paris right now?" if tools
              else "Compare these databases: PostgreSQL, MySQL" if model == "auto:swarm" else "Why is the sky blue?")
    body: dict[str, Any] = {"model": model, "input": prompt, **({"tools": [WEATHER]} if tools else {})}
    with httpx.stream("POST", f"{gateway.base_url}/responses", json={**body, "stream": True}, timeout=20) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(resp.iter_bytes())
    events = door_conformance.responses_stream(raw)
    assert events[-1]["type"] == "response.completed" and b"[DONE]" not in raw
    assert events[-1]["response"]["router"]["route"] == resp.headers["x-router-route"]
    answer = httpx.post(f"{gateway.base_url}/responses", json=body, timeout=20).json()
    door_conformance.assert_strict(door_conformance.RESPONSE.validate_python(answer), answer)
    assert [i["type"] for i in answer["output"]][-1] == ("function_call" if tools else "message")


@pytest.mark.parametrize("model", ["auto", "kimi:agent", "gpt:default", "claude:default"])
def test_tool_round_trip_with_previous_response_id(client: openai.OpenAI, model: str) -> None:
    first = client.responses.create(model=model, input="What's the weather in Paris right now?", tools=[WEATHER])
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and "city" in json.loads(call.arguments)
    second = client.responses.create(model=model, previous_response_id=first.id, tools=[WEATHER], input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp_c": 18, "sky": "clear"}'}])
    assert second.previous_response_id == first.id and "18" in second.output_text


def test_streamed_tool_call_then_stored_conversation(client: openai.OpenAI) -> None:
    with client.responses.stream(model="kimi:agent", input="What's the weather in Paris right now?",
                                 tools=[WEATHER]) as stream:
        events = list(stream)
        first = stream.get_final_response()
    assert any(e.type == "response.function_call_arguments.delta" for e in events)
    call = next(item for item in first.output if item.type == "function_call")
    # The streamed response was stored before its last event: the follow-up finds it at once.
    second = client.responses.create(model="kimi:agent", previous_response_id=first.id, tools=[WEATHER], input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp_c": 21}'}])
    assert "21" in second.output_text


def test_reasoning_effort_picks_the_thinking_mode_and_returns_reasoning(client: openai.OpenAI) -> None:
    raw = client.responses.with_raw_response.create(model="auto", input="Why is the sky blue?",
                                                    reasoning={"effort": "high"})
    assert raw.headers["x-router-mode"] == "thinking"
    response = raw.parse()
    reasoning = [item for item in response.output if item.type == "reasoning"]
    assert reasoning and reasoning[0].summary[0].text
    assert response.output[-1].type == "message"
    with client.responses.stream(model="auto", input="Why is the sky blue?", reasoning={"effort": "low"}) as s:
        kinds = {e.type for e in s}
    assert "response.reasoning_summary_text.delta" in kinds and "response.output_text.delta" in kinds
    low = client.responses.with_raw_response.create(model="auto", input="Hi", reasoning={"effort": "minimal"})
    assert low.headers["x-router-mode"] == "instant"


def test_stored_responses_get_delete_cancel_and_store_false(client: openai.OpenAI) -> None:
    response = client.responses.create(model="kimi:instant", input="Hello")
    again = client.responses.retrieve(response.id)
    assert again.id == response.id and again.output_text == response.output_text
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(response.id)
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    unstored = client.responses.create(model="kimi:instant", input="Hello", store=False)
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model="kimi:instant", input="More", previous_response_id=unstored.id)
    assert info.value.param == "previous_response_id"


def test_agents_sdk_runs_an_agent_with_one_function_tool(gateway: Gateway) -> None:
    from agents import Agent, OpenAIResponsesModel, RunConfig, Runner, function_tool

    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        calls.append(city)
        return '{"temp_c": 19, "sky": "sunny"}'

    model = OpenAIResponsesModel(model="auto", openai_client=gateway.async_client())
    agent = Agent(name="weather", instructions="Answer weather questions with the tool.", tools=[get_weather],
                  model=model)
    result = Runner.run_sync(agent, "What's the weather in Paris right now?",
                             run_config=RunConfig(tracing_disabled=True))
    assert calls and "19" in str(result.final_output)


def _assert_openai_error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    assert error["message"] and "Traceback" not in error["message"]
    return error


def test_errors_in_openais_shape(gateway: Gateway, client: openai.OpenAI) -> None:
    url = f"{gateway.base_url}/responses"
    _assert_openai_error(httpx.post(url, content=b"{nope", headers={"content-type": "application/json"}), 400)
    _assert_openai_error(httpx.post(url, json={"model": "auto"}), 400)
    _assert_openai_error(httpx.put(url, json={}), 405)
    _assert_openai_error(httpx.get(f"{url}/resp_unknown"), 404)
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="gpt-9-ultra", input="Hi")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as infeasible:
        client.responses.create(model="auto", input="Hi", extra_headers={"x-router-max-cost": "0.0000001"})
    assert infeasible.value.code == "route_infeasible"


def test_upstream_failure_and_auth(gateway_factory: Any) -> None:
    gw: Gateway = gateway_factory(default_policy(retry={"attempts_per_route": 1}), settings={"client_keys": "key-a"})
    with pytest.raises(openai.AuthenticationError):
        gw.client(api_key="wrong").responses.create(model="auto", input="Hi")
    client = gw.client(api_key="key-a")
    assert client.responses.create(model="kimi:instant", input="Hi").output_text
    for name in ("kimi", "gpt", "claude"):
        gw.demo.set_behavior(name, error_rate=1.0, error_status=503)
    with pytest.raises(openai.APIStatusError) as info:
        client.responses.create(model="auto", input="Hi")
    assert info.value.status_code == 502 and info.value.code == "upstream_error"
    metrics = httpx.get(f"{gw.url}/metrics").text
    series = 'router_requests_total{api="responses",mode="instant",route="kimi:instant",status="upstream_error"'
    assert series in metrics
