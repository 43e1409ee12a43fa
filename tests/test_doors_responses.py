"""The Responses door's converters, checked against the official ``openai`` SDK's own types.

Every rendered ``Response`` and stream event is validated with pydantic against the SDK's published
models (``Response``, ``ResponseStreamEvent``), strictly: the class must be the one named by ``type``
and no unexpected field may ride along. The rendered byte stream is also read by the SDK's own
``responses.stream`` / ``responses.create`` over an in-memory transport (the network boundary).
"""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import orjson
import pytest

from router.doors import openai_responses as responses
from router.doors.responses_rendering import ResponsesStreamRenderer, from_chat_response
from router.engine.request_facts import extract_facts
from router.errors import InvalidRequest
from tests.support.door_conformance import RESPONSE, RESPONSES_EVENT, assert_strict, responses_stream

EVENT = RESPONSES_EVENT
validate_stream = responses_stream


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "kimi",
            "choices": choices, **extra}


USAGE = {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42,
         "completion_tokens_details": {"reasoning_tokens": 5}, "prompt_tokens_details": {"cached_tokens": 10}}
ROUTER = {"task_type": "coding", "route": "kimi:thinking", "mode": "thinking"}
TOOL = {"type": "function", "name": "get_weather", "description": "Weather", "strict": True,
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                       "additionalProperties": False}}
REQUEST = {"model": "auto", "input": "Weather in Oslo?", "tools": [TOOL], "instructions": "Be terse.",
           "metadata": {"team": "a"}, "reasoning": {"effort": "high"}, "temperature": 0.5, "max_output_tokens": 500}


def render(chunks: list[dict[str, Any]], request: dict[str, Any] = REQUEST) -> tuple[bytes, ResponsesStreamRenderer]:
    renderer = ResponsesStreamRenderer(request=request, model="auto", id="resp_1", created_at=1700000000)
    data = renderer.start() + b"".join(renderer.feed(c) for c in chunks) + renderer.finish()
    return data, renderer


def test_the_strict_check_rejects_unknown_shapes() -> None:
    with pytest.raises(ValueError):
        EVENT.validate_python({"type": "response.shouted", "sequence_number": 0})
    with pytest.raises(ValueError):  # a required field missing
        EVENT.validate_python({"type": "response.output_text.delta", "sequence_number": 0, "delta": "x"})
    typo = {"type": "response.function_call_arguments.delta", "sequence_number": 0, "item_id": "fc", "output_index": 0,
            "delta": "{", "call_id": "c"}
    with pytest.raises(AssertionError, match="unknown fields"):
        assert_strict(EVENT.validate_python(typo), typo)


# --- request ---------------------------------------------------------------------------------


def test_string_input_with_everything_else() -> None:
    body = {**REQUEST, "tool_choice": {"type": "function", "name": "get_weather"}, "top_p": 0.9,
            "parallel_tool_calls": False, "stream": True, "store": False, "safety_identifier": "u1",
            "router": {"latency_budget_ms": 900},
            "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": True}}}
    chat = responses.to_chat_request(body)
    assert chat == {
        "model": "auto",
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Weather in Oslo?"}],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Weather", "parameters": TOOL["parameters"], "strict": True}}],
        "parallel_tool_calls": False,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "max_tokens": 500, "temperature": 0.5, "top_p": 0.9,
        "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"},
                                                                   "strict": True}},
        "user": "u1", "stream": True, "stream_options": {"include_usage": True},
        "router": {"latency_budget_ms": 900},
    }
    assert responses.mode_hint(body) == "agent"  # reasoning with tools
    assert not responses.should_store(body) and responses.should_store(REQUEST)


def test_item_input_round_trip_with_reasoning_calls_and_outputs() -> None:
    """What the openai-agents SDK sends on its second turn when it keeps the history itself."""
    items = [
        {"role": "developer", "content": "Use tools."},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "Weather here?"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Need the tool."}]},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
         "arguments": '{"city":"Oslo"}', "status": "completed"},
        {"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "get_weather",
         "arguments": '{"city":"Bergen"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "rain"},
        {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "sun"}]},
        {"role": "user", "content": "Thanks"},
    ]
    chat = responses.to_chat_request({"model": "auto", "input": items})
    assert chat["messages"] == [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": [{"type": "text", "text": "Weather here?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA",
                                                                         "detail": "low"}}]},
        {"role": "assistant", "content": "Checking.", "reasoning_content": "Need the tool.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
            {"id": "call_2", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Bergen"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
        {"role": "tool", "tool_call_id": "call_2", "content": "sun"},
        {"role": "user", "content": "Thanks"},
    ]
    assert extract_facts(chat).images == 1


def test_previous_response_conversation_is_prepended_and_instructions_are_not_carried() -> None:
    first = {"model": "auto", "input": "Weather in Oslo?", "instructions": "Old instructions.", "tools": [TOOL]}
    answer = from_chat_response(chat_answer({"content": None, "tool_calls": [
        {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
        "tool_calls"), request=first, model="auto")
    stored = responses.conversation_items(None, first, answer)
    assert [i["type"] for i in stored] == ["message", "function_call"]
    second = {"model": "auto", "previous_response_id": answer["id"], "instructions": "New.",
              "input": [{"type": "function_call_output", "call_id": "call_9", "output": "rain"}]}
    chat = responses.to_chat_request(second, stored)
    assert chat["messages"] == [
        {"role": "system", "content": "New."},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_9", "content": "rain"},
    ]
    third = responses.conversation_items(stored, second, {"output": [{"type": "message", "role": "assistant",
                                                               "content": [{"type": "output_text", "text": "Rain."}]}]})
    assert len(third) == 4


@pytest.mark.parametrize(("effort", "hint"), [
    (None, None), ("none", "instant"), ("minimal", "instant"), ("low", "thinking"), ("high", "thinking"),
    ("max", "thinking")])
def test_reasoning_effort_is_a_mode_hint(effort: str | None, hint: str | None) -> None:
    body: dict[str, Any] = {"model": "auto", "input": "x"}
    if effort is not None:
        body["reasoning"] = {"effort": effort}
    assert responses.mode_hint(body) == hint
    chat = responses.to_chat_request(body)
    assert "reasoning" not in chat and "reasoning_effort" not in chat


def test_tool_choice_auto_or_none_without_tools_is_dropped() -> None:
    for choice in ("auto", "none"):
        assert "tool_choice" not in responses.to_chat_request({"model": "m", "input": "x", "tool_choice": choice})


def test_json_object_and_text_formats() -> None:
    base = {"model": "m", "input": "x"}
    assert responses.to_chat_request({**base, "text": {"format": {"type": "json_object"}}})["response_format"] == \
        {"type": "json_object"}
    assert "response_format" not in responses.to_chat_request({**base, "text": {"format": {"type": "text"}}})


@pytest.mark.parametrize(("patch", "param"), [
    ({"model": None}, "model"),
    ({"input": None}, "input"),
    ({"input": []}, "input"),
    ({"input": 5}, "input"),
    ({"input": [{"type": "message", "role": "robot", "content": "x"}]}, "input[0].role"),
    ({"input": [{"type": "message", "role": "user"}]}, "input[0].content"),
    ({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input[0].content[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
     "input[0].content[0].image_url"),
    ({"input": [{"type": "function_call", "name": "f"}]}, "input[0]"),
    ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
    ({"input": [{"type": "file_search_call", "id": "w"}]}, "input[0].type"),  # web_search_call: skipped
    ({"instructions": ["x"]}, "instructions"),
    ({"tools": [{"type": "file_search"}]}, "tools[0]"),  # web_search: left out (responses_tools)
    ({"tool_choice": {"type": "allowed_tools"}}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),  # no tools
    ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"temperature": 3}, "temperature"),
    ({"text": {"format": {"type": "json_schema"}}}, "text.format"),
    ({"text": {"format": {"type": "yaml"}}}, "text.format.type"),
    ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
    ({"metadata": {"n": 1}}, "metadata"),
    ({"background": True}, "background"),
    ({"conversation": "conv_1"}, "conversation"),
])
def test_bad_requests_are_400_in_openai_shape(patch: dict[str, Any], param: str) -> None:
    body = {"model": "auto", "input": "hi", **patch}
    with pytest.raises(InvalidRequest) as info:
        responses.to_chat_request(body)
    exc = info.value
    assert exc.status == 400 and exc.param == param
    status, raw, _ = responses.render_error(exc)
    error = orjson.loads(raw)["error"]
    assert status == 400 and error["type"] == "invalid_request_error" and error["param"] == param
    assert error["message"]


def test_not_found_and_error_bodies() -> None:
    missing = responses.ResponseNotFound("Response with id 'resp_x' not found.", param="response_id")
    status, raw, _ = responses.render_error(missing)
    assert status == 404 and orjson.loads(raw)["error"]["param"] == "response_id"
    assert orjson.loads(responses.error_body(502, "upstream broke"))["error"]["type"] == "server_error"
    assert orjson.loads(responses.error_body(429, "slow"))["error"]["type"] == "rate_limit_error"


# --- response --------------------------------------------------------------------------------


def chat_answer(message: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {"id": "chatcmpl-abc", "object": "chat.completion", "created": 1, "model": "kimi-k2.5",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
            "usage": USAGE, "router": ROUTER}


def test_response_with_reasoning_text_and_call_validates() -> None:
    out = from_chat_response(chat_answer({
        "content": "Checking.", "reasoning_content": "Need the tool.",
        "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]}, "tool_calls"),
        request=REQUEST, model="auto", id="resp_1", created_at=1700000000)
    response = RESPONSE.validate_python(out)
    assert_strict(response, out)
    assert [i.type for i in response.output] == ["reasoning", "message", "function_call"]
    assert response.output_text == "Checking."
    assert response.output[2].call_id == "call_1"  # type: ignore[union-attr]
    assert response.status == "completed" and response.id == "resp_1" and response.instructions == "Be terse."
    assert response.usage is not None and (response.usage.input_tokens, response.usage.output_tokens,
                                           response.usage.output_tokens_details.reasoning_tokens,
                                           response.usage.input_tokens_details.cached_tokens) == (30, 12, 5, 10)
    assert response.tools[0].name == "get_weather"  # type: ignore[union-attr]
    assert response.reasoning is not None and response.reasoning.effort == "high"
    assert out["router"] == ROUTER


def test_length_finish_is_incomplete() -> None:
    out = from_chat_response(chat_answer({"content": "cut"}, "length"), request={"model": "m", "input": "x"},
                             model="m")
    assert_strict(RESPONSE.validate_python(out), out)
    assert out["status"] == "incomplete" and out["incomplete_details"] == {"reason": "max_output_tokens"}
    assert out["output"][0]["status"] == "incomplete"


def sdk_client(body: bytes, content_type: str) -> openai.OpenAI:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": content_type})
    return openai.OpenAI(api_key="test", base_url="http://gateway.invalid/v1",
                         http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))


def test_sdk_create_parses_the_json_response() -> None:
    out = from_chat_response(chat_answer({"content": "Hello."}), request={"model": "auto", "input": "hi"},
                             model="auto")
    client = sdk_client(orjson.dumps(out), "application/json")
    response = client.responses.create(model="auto", input="hi")
    assert response.output_text == "Hello." and response.id == out["id"]


# --- stream ----------------------------------------------------------------------------------

THINK_TEXT_TOOLS = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"reasoning_content": "Need "}), chunk({"reasoning_content": "the tool."}),
    chunk({"content": "Check"}), chunk({"content": "ing."}),
    chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                           "function": {"name": "get_weather", "arguments": ""}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
    chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                           "function": {"name": "get_weather", "arguments": '{"city":"Bergen"}'}}]}),
    chunk({}, finish="tool_calls"),
    chunk(None, usage=USAGE, router=ROUTER),
]


def test_stream_sequence_validates() -> None:
    data, renderer = render(THINK_TEXT_TOOLS)
    events = validate_stream(data)
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta", "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done", "response.reasoning_summary_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed",
    ]
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["router"] == ROUTER and final["usage"]["total_tokens"] == 42
    assert [i["type"] for i in final["output"]] == ["reasoning", "message", "function_call", "function_call"]
    assert final["output"][2]["arguments"] == '{"city":"Oslo"}' and final["output"][2]["call_id"] == "call_a"
    assert renderer.response == final
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []


def test_sdk_stream_accumulates_the_same_response_as_the_json_answer() -> None:
    data, _ = render(THINK_TEXT_TOOLS)
    client = sdk_client(data, "text/event-stream")
    with client.responses.stream(model="auto", input="Weather in Oslo?", tools=[TOOL]) as stream:  # type: ignore[list-item]
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[-1] == "response.completed" and "response.output_text.delta" in kinds
    assert final.output_text == "Checking."
    json_answer = from_chat_response(chat_answer({
        "content": "Checking.", "reasoning_content": "Need the tool.",
        "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "get_weather",
                                                                         "arguments": '{"city":"Oslo"}'}},
                       {"id": "call_b", "type": "function", "function": {"name": "get_weather",
                                                                         "arguments": '{"city":"Bergen"}'}}]},
        "tool_calls"), request=REQUEST, model="auto", id="resp_1", created_at=1700000000)

    def shape(response: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(i["type"], i.get("call_id"), i.get("arguments"), i.get("status"), orjson.dumps(i.get("content")),
                 orjson.dumps(i.get("summary"))) for i in response["output"]]

    streamed = final.model_dump(mode="json", exclude_none=True)
    assert shape(streamed) == shape(RESPONSE.validate_python(json_answer).model_dump(mode="json", exclude_none=True))
    assert streamed["usage"] == RESPONSE.validate_python(json_answer).model_dump(mode="json")["usage"] | {
        "input_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 0}}


def test_sdk_create_stream_iterates_events() -> None:
    data, _ = render([chunk({"content": "Hi"}, finish="stop"), chunk(None, usage=USAGE)], {"model": "m", "input": "x"})
    events = list(sdk_client(data, "text/event-stream").responses.create(model="m", input="x", stream=True))
    assert events[-1].type == "response.completed"
    assert [e.delta for e in events if e.type == "response.output_text.delta"] == ["Hi"]


def test_length_stream_ends_incomplete() -> None:
    data, renderer = render([chunk({"content": "cut"}, finish="length")], {"model": "m", "input": "x"})
    events = validate_stream(data)
    assert events[-1]["type"] == "response.incomplete"
    assert renderer.response is not None and renderer.response["incomplete_details"] == {"reason": "max_output_tokens"}


def test_mid_stream_failure() -> None:
    renderer = ResponsesStreamRenderer(request={"model": "m", "input": "x"}, model="m")
    data = (renderer.start() + renderer.feed(chunk({"content": "part"})) + renderer.error_event("upstream broke")
            + renderer.fail("upstream broke"))
    events = validate_stream(data)
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-1]["response"]["error"] == {"code": "server_error", "message": "upstream broke"}
    assert renderer.finish() == b""


def test_usage_and_router_given_at_finish() -> None:
    renderer = ResponsesStreamRenderer(request={"model": "m", "input": "x"}, model="m")
    data = renderer.start() + renderer.feed(chunk({"content": "x"}, finish="stop")) \
        + renderer.finish(usage=USAGE, router=ROUTER)
    final = validate_stream(data)[-1]["response"]
    assert final["usage"]["output_tokens"] == 12 and final["router"] == ROUTER
    out = from_chat_response(chat_answer({"content": "x"}), request={"model": "m", "input": "x"}, model="m",
                             router={"route": "r"})
    assert out["router"] == {"route": "r"}


def test_empty_stream_completes_with_no_output() -> None:
    renderer = ResponsesStreamRenderer(request={"model": "m", "input": "x"}, model="m")
    events = validate_stream(renderer.finish())
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "response.completed"]


# --- requests as the real SDK sends them -------------------------------------------------------


class Recorder:
    """The SDK's transport: records each request body, answers with the next of ``answers``."""

    def __init__(self, answers: list[dict[str, Any]]) -> None:
        self.answers = answers
        self.bodies: list[dict[str, Any]] = []
        self.client = openai.OpenAI(api_key="test", base_url="http://gateway.invalid/v1",
                                    http_client=httpx2.Client(transport=httpx2.MockTransport(self)))

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.bodies.append(orjson.loads(request.content))
        answer = self.answers[len(self.bodies) - 1]
        return httpx2.Response(200, content=orjson.dumps(answer), headers={"content-type": "application/json"})


def test_sdk_tool_round_trip_both_ways_converts() -> None:
    """Turn 2 once with previous_response_id (the gateway's store), once with the output sent back
    as input (what the openai-agents SDK does): both give the backend the same conversation."""
    first_request = {"model": "auto", "input": "Weather in Oslo?", "tools": [TOOL], "instructions": "Be terse.",
                     "reasoning": {"effort": "low"}}
    first = from_chat_response(chat_answer({"content": None, "reasoning_content": "Use the tool.", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
        "tool_calls"), request=first_request, model="auto")
    final = from_chat_response(chat_answer({"content": "Rain."}), request=first_request, model="auto")
    sdk = Recorder([first, final, final])
    response = sdk.client.responses.create(model="auto", input="Weather in Oslo?", tools=[TOOL],  # type: ignore[list-item]
                                           instructions="Be terse.", reasoning={"effort": "low"})
    call = next(item for item in response.output if item.type == "function_call")
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "rain"}
    sdk.client.responses.create(model="auto", previous_response_id=response.id, input=[output],  # type: ignore[list-item]
                                tools=[TOOL], instructions="Be terse.")  # type: ignore[list-item]
    sdk.client.responses.create(model="auto", tools=[TOOL], instructions="Be terse.",  # type: ignore[list-item]
                                input=[{"role": "user", "content": "Weather in Oslo?"}, *response.output,  # type: ignore[list-item]
                                       output])
    assert responses.mode_hint(sdk.bodies[0]) == "agent"
    stored = responses.conversation_items(None, sdk.bodies[0], first)
    by_store = responses.to_chat_request(sdk.bodies[1], stored)
    by_history = responses.to_chat_request(sdk.bodies[2])
    expected = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "reasoning_content": "Use the tool.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
    ]
    assert by_store["messages"] == expected and by_history["messages"] == expected


async def test_async_sdk_stream_reads_the_rendered_events() -> None:
    data, _ = render(THINK_TEXT_TOOLS)

    async def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=data, headers={"content-type": "text/event-stream"})
    client = openai.AsyncOpenAI(api_key="test", base_url="http://gateway.invalid/v1",
                                http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))
    async with client.responses.stream(model="auto", input="x") as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert kinds[-1] == "response.completed" and final.output_text == "Checking."
    await client.close()


async def test_the_drain_error_event_continues_the_streams_numbering() -> None:
    """The shutdown drain ends a stream from the request's own task, after its frames were cancelled:
    the door's ``error`` event then takes the next ``sequence_number`` (not 0)."""
    import asyncio

    from router.doors.responses_door import ResponsesDoor
    from router.errors import Unavailable

    door, cut = ResponsesDoor(), Unavailable("The gateway is shutting down.")

    async def request() -> bytes:  # one request's task: a stream under way, then the drain
        renderer = ResponsesStreamRenderer(request=REQUEST, model="auto")

        async def frames() -> Any:
            yield renderer.feed(chunk({"content": "partial"}))
            await asyncio.sleep(3600)  # the upstream trickles; the drain comes first
            yield b""

        sent = b""
        stream = frames()
        try:
            async with asyncio.timeout(0.05):
                async for frame in stream:
                    sent += frame
        except TimeoutError:
            await stream.aclose()
        return sent + door.stream_error_frames(cut)

    from tests.support.door_conformance import parse_named_sse

    events = [payload for _, payload in parse_named_sse(await asyncio.create_task(request()))]
    for event in events:
        assert_strict(EVENT.validate_python(event), event)
    assert [e["sequence_number"] for e in events] == list(range(len(events))) and len(events) > 3
    assert events[-1]["type"] == "error" and events[-1]["message"] == "The gateway is shutting down."
    # A task that rendered no Responses stream has nothing to continue.
    import contextvars

    lone = contextvars.Context().run(door.stream_error_frames, cut)
    assert b'"sequence_number":0' in lone
