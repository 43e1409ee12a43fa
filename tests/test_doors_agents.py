"""The openai-agents SDK runs an agent with one function tool over the Responses door's converters.

The SDK's own ``OpenAIResponsesModel`` talks to an ``AsyncOpenAI`` client whose transport (the network
boundary) is a small stand-in for the gateway's adapter: it converts each request with
``openai_responses.to_chat_request`` (loading ``previous_response_id`` from a ``MemoryResponseStore``),
asks a scripted chat model, and renders the answer with ``responses_rendering`` — JSON or SSE. The
real gateway wiring is tested end to end by the pipeline's own tests; this one pins that the
converters satisfy the agents SDK, turn after turn, streamed and not.
"""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import orjson
import pytest
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

from router.doors import openai_responses
from router.doors.response_store import MemoryResponseStore, remember
from router.doors.responses_rendering import ResponsesStreamRenderer, from_chat_response
from tests.support.door_conformance import RESPONSE, assert_strict, responses_stream

set_tracing_disabled(True)  # the SDK would otherwise export traces to OpenAI


def scripted_model(chat: dict[str, Any]) -> dict[str, Any]:
    """A chat model: calls the tool first, then answers with what the tool said."""
    tool_results = [m["content"] for m in chat["messages"] if m["role"] == "tool"]
    if not tool_results:
        message: dict[str, Any] = {"role": "assistant", "content": None, "reasoning_content": "Ask the tool.",
                                   "tool_calls": [{"id": "call_1", "type": "function", "function": {
                                       "name": "get_weather", "arguments": '{"city": "Oslo"}'}}]}
        finish = "tool_calls"
    else:
        message, finish = {"role": "assistant", "content": f"It is {tool_results[-1]} in Oslo."}, "stop"
    return {"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "kimi",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}}


def as_chunks(answer: dict[str, Any]) -> list[dict[str, Any]]:
    message = answer["choices"][0]["message"]
    deltas: list[dict[str, Any]] = []
    if message.get("reasoning_content"):
        deltas.append({"reasoning_content": message["reasoning_content"]})
    if message.get("content"):
        text = message["content"]
        deltas += [{"content": text[:5]}, {"content": text[5:]}]
    for i, call in enumerate(message.get("tool_calls") or ()):
        deltas.append({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                       "function": {"name": call["function"]["name"], "arguments": ""}}]})
        deltas.append({"tool_calls": [{"index": i, "function": {"arguments": call["function"]["arguments"]}}]})
    chunks = [{"choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": answer["choices"][0]["finish_reason"]}]})
    chunks.append({"choices": [], "usage": answer["usage"]})
    return chunks


class ResponsesDoor:
    """Stand-in for the gateway's /v1/responses adapter, built only from the door's pure parts."""

    def __init__(self) -> None:
        self.store = MemoryResponseStore()
        self.requests: list[dict[str, Any]] = []
        self.chats: list[dict[str, Any]] = []

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        body = orjson.loads(request.content)
        self.requests.append(body)
        previous = None
        if body.get("previous_response_id"):
            stored = await self.store.get(body["previous_response_id"])
            assert stored is not None, "the SDK chained to a response the store does not have"
            previous = stored.conversation
        chat = openai_responses.to_chat_request(body, previous)
        self.chats.append(chat)
        answer = scripted_model(chat)
        if body.get("stream"):
            renderer = ResponsesStreamRenderer(request=body, model=body["model"])
            data = renderer.start() + b"".join(renderer.feed(c) for c in as_chunks(answer)) + renderer.finish()
            responses_stream(data)
            assert renderer.response is not None
            await remember(self.store, request=body, response=renderer.response, previous=previous)
            return httpx2.Response(200, content=data, headers={"content-type": "text/event-stream"})
        response = from_chat_response(answer, request=body, model=body["model"])
        assert_strict(RESPONSE.validate_python(response), response)
        await remember(self.store, request=body, response=response, previous=previous)
        return httpx2.Response(200, content=orjson.dumps(response), headers={"content-type": "application/json"})


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return "rain" if city == "Oslo" else "sun"


def agent_and_door() -> tuple[Agent[Any], ResponsesDoor]:
    door = ResponsesDoor()
    client = openai.AsyncOpenAI(api_key="test", base_url="http://gateway.invalid/v1",
                                http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(door)))
    agent = Agent(name="weather", instructions="Answer with the tool.", tools=[get_weather],
                  model=OpenAIResponsesModel(model="auto", openai_client=client))
    return agent, door


@pytest.mark.parametrize("chain", [False, True], ids=["history-resent", "previous_response_id"])
async def test_agent_runs_a_function_tool(chain: bool) -> None:
    agent, door = agent_and_door()
    result = await Runner.run(agent, "Weather in Oslo?", auto_previous_response_id=chain)
    assert result.final_output == "It is rain in Oslo."
    assert len(door.requests) == 2
    assert door.requests[0]["tools"][0]["name"] == "get_weather"
    # Whichever way the SDK sent turn 2, the backend saw the whole conversation.
    roles = [m["role"] for m in door.chats[1]["messages"]]
    assert roles == ["system", "user", "assistant", "tool"]
    assert door.chats[1]["messages"][2]["reasoning_content"] == "Ask the tool."
    assert ("previous_response_id" in door.requests[1]) == chain


async def test_agent_runs_streamed() -> None:
    agent, door = agent_and_door()
    result = Runner.run_streamed(agent, "Weather in Oslo?")
    kinds = {event.type async for event in result.stream_events()}
    assert result.final_output == "It is rain in Oslo."
    assert "raw_response_event" in kinds and all(body.get("stream") for body in door.requests)
