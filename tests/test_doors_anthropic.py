"""The Anthropic Messages door's converters, checked against the official ``anthropic`` SDK's own types.

Every rendered ``Message`` and stream event is validated with pydantic against the SDK's published
models (``Message``, ``RawMessageStreamEvent``, ``ErrorResponse``), strictly: the model class must be
the one named by ``type`` and no unexpected field may ride along. The rendered byte stream is also
read by the SDK's own client (``messages.stream``) over an in-memory transport.
"""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import httpx2
import orjson
import pytest

from router.doors import anthropic_messages as am
from router.doors.anthropic_rendering import (
    MessagesStreamRenderer,
    from_chat_response,
    models_page,
    thinking_signature,
)
from router.engine.request_facts import extract_facts
from router.errors import InvalidRequest
from tests.support.door_conformance import (
    ANTHROPIC_ERROR,
    ANTHROPIC_EVENT,
    ANTHROPIC_MESSAGE,
    anthropic_stream,
    assert_strict,
)

EVENT = ANTHROPIC_EVENT
MESSAGE = ANTHROPIC_MESSAGE
ERROR = ANTHROPIC_ERROR
validate_stream = anthropic_stream


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "kimi",
            "choices": choices, **extra}


USAGE = {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42,
         "completion_tokens_details": {"reasoning_tokens": 5}, "prompt_tokens_details": {"cached_tokens": 10}}
ROUTER = {"task_type": "coding", "route": "kimi:thinking", "mode": "thinking"}


def render(chunks: list[dict[str, Any]], **kwargs: Any) -> bytes:
    renderer = MessagesStreamRenderer(model="auto", message_id="msg_1", input_tokens=20, **kwargs)
    return renderer.start() + b"".join(renderer.feed(c) for c in chunks) + renderer.finish()


def test_the_strict_check_rejects_unknown_shapes() -> None:
    """The validators above can fail: an unknown event type, block type or extra field is caught."""
    with pytest.raises(ValueError):
        EVENT.validate_python({"type": "content_block_shout", "index": 0})
    with pytest.raises(ValueError):
        EVENT.validate_python({"type": "content_block_start", "index": 0, "content_block": {"type": "essay"}})
    typo = {"type": "content_block_stop", "index": 0, "stop_reasons": "end_turn"}
    with pytest.raises(AssertionError, match="unknown fields"):
        assert_strict(EVENT.validate_python(typo), typo)


# --- request ---------------------------------------------------------------------------------

PNG = base64.b64encode(b"\x89PNG fake").decode()
BASE = {"model": "auto", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


def test_full_request_converts_to_chat() -> None:
    body = {
        "model": "auto", "max_tokens": 4096, "temperature": 0.3, "top_p": 0.9, "top_k": 40,
        "stop_sequences": ["END"], "metadata": {"user_id": "u-1"}, "stream": True,
        "router": {"max_cost_usd": 0.01},
        "system": [{"type": "text", "text": "Be terse."}, {"type": "text", "text": "Use tools."}],
        "tools": [{"name": "get_weather", "description": "Weather", "cache_control": {"type": "ephemeral"},
                   "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Weather here?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Need the tool.", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True,
                 "content": [{"type": "text", "text": "timeout"}]},
                {"type": "text", "text": "Try again?"}]},
        ],
    }
    chat = am.to_chat_request(body)
    assert chat == {
        "model": "auto", "max_tokens": 4096, "temperature": 0.3, "top_p": 0.9, "stop": ["END"],
        "user": "u-1", "stream": True, "stream_options": {"include_usage": True},
        "router": {"max_cost_usd": 0.01},
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "required", "parallel_tool_calls": False,
        "messages": [
            {"role": "system", "content": "Be terse.\nUse tools."},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather here?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}]},
            {"role": "assistant", "content": "Checking.", "reasoning_content": "Need the tool.",
             "tool_calls": [{"id": "toolu_1", "type": "function",
                             "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "[tool error] timeout"},
            {"role": "user", "content": "Try again?"},
        ],
    }
    assert "top_k" not in chat  # no Chat Completions equivalent
    facts = extract_facts(chat)
    assert facts.images == 2 and facts.has_tools and facts.max_output_tokens == 4096 and facts.stream


def test_tool_choice_auto_or_none_without_tools_is_dropped() -> None:
    for kind in ("auto", "none"):
        assert "tool_choice" not in am.to_chat_request({**BASE, "tool_choice": {"type": kind}})


def test_tool_result_images_follow_the_tool_message() -> None:
    chat = am.to_chat_request({"model": "auto", "max_tokens": 10, "messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": [
            {"type": "text", "text": "screenshot:"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}]}]})
    assert chat["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": "screenshot:"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}]


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none"),
    ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
])
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": choice}
    assert am.to_chat_request(body)["tool_choice"] == expected


@pytest.mark.parametrize(("thinking", "tools", "hint"), [
    (None, False, None), ({"type": "enabled", "budget_tokens": 2048}, False, "thinking"),
    ({"type": "enabled", "budget_tokens": 2048}, True, "agent"), ({"type": "between_tools"}, True, "agent"),
    ({"type": "disabled"}, False, "instant"), ({"type": "disabled"}, True, "instant"),
    ({"type": "adaptive", "display": "summarized"}, False, None),
])
def test_thinking_becomes_a_mode_hint_not_a_body_field(thinking: Any, tools: bool, hint: str | None) -> None:
    body: dict[str, Any] = {"model": "auto", "max_tokens": 4096, "messages": [{"role": "user", "content": "hi"}]}
    if thinking is not None:
        body["thinking"] = thinking
    if tools:
        body["tools"] = [{"name": "f", "input_schema": {"type": "object"}}]
    assert am.mode_hint(body) == hint
    assert "thinking" not in am.to_chat_request(body)


def test_output_config_format_becomes_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    chat = am.to_chat_request({**BASE, "output_config": {"effort": "high",
                                                         "format": {"type": "json_schema", "schema": schema}}})
    assert chat["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": schema, "strict": True}}
    assert "output_config" not in chat and "effort" not in chat


@pytest.mark.parametrize(("patch", "param"), [
    ({"model": ""}, "model"),
    ({"max_tokens": None}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}]},
     "messages[0].content[0].source.type"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]}, "messages[0].content[0].tool_use_id"),
    ({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "name": "f"}]}]},
     "messages[0].content[0]"),
    ({"system": 5}, "system"),
    ({"tools": [{"type": "web_search", "name": "web_search"}]}, "tools[0]"),  # not a type Anthropic defines
    ({"tools": [{"name": "f", "input_schema": "x"}]}, "tools[0].input_schema"),
    ({"tool_choice": {"type": "sometimes"}}, "tool_choice"),
    ({"tool_choice": {"type": "any"}}, "tool_choice"),  # no tools
    ({"tool_choice": {"type": "tool"}, "tools": [{"name": "f", "input_schema": {}}]}, "tool_choice.name"),
    ({"stop_sequences": "END"}, "stop_sequences"),
    ({"temperature": 1.5}, "temperature"),
    ({"top_p": "high"}, "top_p"),
    ({"thinking": {"type": "enabled", "budget_tokens": 100}}, "thinking.budget_tokens"),
    ({"thinking": {"type": "enabled", "budget_tokens": 4096}}, "thinking.budget_tokens"),  # ≥ max_tokens
    ({"thinking": {"type": "loud"}}, "thinking.type"),
    ({"output_config": {"effort": "huge"}}, "output_config.effort"),
    ({"output_config": {"format": {"type": "json_object"}}}, "output_config.format"),
    ({"output_config": 3}, "output_config"),
])
def test_bad_requests_are_400_in_anthropic_shape(patch: dict[str, Any], param: str) -> None:
    body = {**BASE, **patch}
    with pytest.raises(am.MessagesRequestInvalid) as info:
        am.to_chat_request(body)
    exc = info.value
    assert isinstance(exc, InvalidRequest) and exc.status == 400 and exc.param == param
    parsed = orjson.loads(exc.body_bytes())
    assert parsed["type"] == "error" and parsed["error"]["type"] == "invalid_request_error"
    assert param.split("[")[0].split(".")[0] in parsed["error"]["message"]
    assert_strict(ERROR.validate_python(parsed), parsed)


def test_claude_passthrough_keeps_the_request_and_drops_only_what_is_the_routers() -> None:
    claude_thinking = {"type": "thinking", "thinking": "Claude's own.", "signature": "EqQBCkYIBxgCKkB"}
    kimi_thinking = {"type": "thinking", "thinking": "Kimi's.", "signature": thinking_signature("Kimi's.")}
    body = {"model": "auto", "max_tokens": 4096, "router": {"max_cost_usd": 0.1}, "top_k": 5,
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "q"},
                         {"role": "assistant", "content": [claude_thinking, {"type": "text", "text": "a"}]},
                         {"role": "user", "content": "q2"},
                         {"role": "assistant", "content": [kimi_thinking, {"type": "text", "text": "b"}]},
                         {"role": "user", "content": "q3"}]}
    out = am.claude_passthrough_body(body, model="claude-sonnet-4-5")
    assert out["model"] == "claude-sonnet-4-5" and "router" not in out
    assert out["top_k"] == 5 and out["thinking"] == body["thinking"] and out["system"] == body["system"]
    assert out["messages"][1]["content"] == [claude_thinking, {"type": "text", "text": "a"}]
    assert out["messages"][3]["content"] == [{"type": "text", "text": "b"}]
    assert body["messages"][3]["content"][0] is kimi_thinking  # the client's body is not modified


def test_not_an_object() -> None:
    with pytest.raises(am.MessagesRequestInvalid, match="JSON object"):
        am.to_chat_request([])  # type: ignore[arg-type]


@pytest.mark.parametrize(("status", "kind"), [
    (400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"),
    (404, "not_found_error"), (413, "request_too_large"), (422, "invalid_request_error"),
    (429, "rate_limit_error"), (500, "api_error"), (502, "api_error"), (503, "overloaded_error"),
    (504, "timeout_error"), (529, "overloaded_error"),
])
def test_error_types(status: int, kind: str) -> None:
    body = orjson.loads(am.error_body(status, "boom"))
    assert body == {"type": "error", "error": {"type": kind, "message": "boom"}}
    if kind != "request_too_large":  # documented (docs.claude.com/en/api/errors), not in the SDK's union
        assert_strict(ERROR.validate_python(body), body)


def test_render_error_keeps_retry_after() -> None:
    from router.errors import RateLimited

    status, body, headers = am.render_error(RateLimited("slow down", retry_after_s=3))
    assert status == 429 and headers == {"retry-after": "3"}
    assert orjson.loads(body)["error"] == {"type": "rate_limit_error", "message": "slow down"}


def test_count_tokens_matches_the_routing_estimate() -> None:
    body = {"model": "auto", "system": "You are terse.",
            "messages": [{"role": "user", "content": "x" * 400}]}
    counted = am.count_tokens(body)
    chat = am.to_chat_request({**body, "max_tokens": 1})
    assert counted == {"input_tokens": extract_facts(chat).input_tokens}
    assert counted["input_tokens"] == (400 + len("You are terse.")) // 4 + 1
    with_image = am.count_tokens({**body, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://e.com/x.png"}}]}]})
    assert with_image["input_tokens"] > 1000  # an image costs ~1.5k tokens
    thinking = am.count_tokens({**body, "thinking": {"type": "enabled", "budget_tokens": 2048}})
    assert thinking == counted  # count_tokens carries no max_tokens: the budget is not compared with one


# --- message ---------------------------------------------------------------------------------


def answer(message: dict[str, Any], finish: str = "stop", **choice: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-abc", "object": "chat.completion", "created": 1, "model": "kimi-k2.5",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish,
                         **choice}],
            "usage": USAGE, "router": ROUTER}


def test_message_with_thinking_text_and_tool_use_validates() -> None:
    out = from_chat_response(answer({
        "content": "Let me check.", "reasoning_content": "The user wants weather.",
        "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        finish="tool_calls"), model="auto")
    message = MESSAGE.validate_python(out)
    assert_strict(message, out)
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[0].signature == thinking_signature("The user wants weather.")  # type: ignore[union-attr]
    assert am.is_router_signature(message.content[0].signature)  # type: ignore[union-attr]
    assert message.content[2].input == {"city": "Oslo"}  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use" and message.id == "msg_abc" and message.model == "auto"
    # Anthropic counts cache reads apart from input_tokens.
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) \
        == (20, 10, 12)
    assert out["router"] == ROUTER


@pytest.mark.parametrize(("finish", "stop_reason"), [
    ("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal"),
    (None, "end_turn"),
])
def test_stop_reasons(finish: str | None, stop_reason: str) -> None:
    out = from_chat_response(answer({"content": "x"}, finish=finish), model="m")  # type: ignore[arg-type]
    assert_strict(MESSAGE.validate_python(out), out)
    assert out["stop_reason"] == stop_reason and out["stop_sequence"] is None


def test_matched_stop_sequence_from_vllm() -> None:
    out = from_chat_response(answer({"content": "x"}, stop_reason="END"), model="m", stop_sequences=["END"])
    assert (out["stop_reason"], out["stop_sequence"]) == ("stop_sequence", "END")
    assert_strict(MESSAGE.validate_python(out), out)


def test_bad_tool_arguments_are_kept_not_lost() -> None:
    out = from_chat_response(answer({"content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}, "tool_calls"),
        model="m")
    assert out["content"] == [{"type": "tool_use", "id": "c", "name": "f", "input": {"_raw_arguments": "{not json"}}]
    assert_strict(MESSAGE.validate_python(out), out)


# --- stream ----------------------------------------------------------------------------------

THINK_TEXT_TOOLS = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"reasoning_content": "Think"}), chunk({"reasoning_content": "ing."}),
    chunk({"content": "Calling "}), chunk({"content": "tools."}),
    chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                           "function": {"name": "get_weather", "arguments": ""}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
    chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                           "function": {"name": "get_time", "arguments": "{}"}}]}),
    chunk({}, finish="tool_calls"),
    chunk(None, usage=USAGE, router=ROUTER),
]


def test_stream_sequence_validates_and_indexes_blocks() -> None:
    frames = validate_stream(render(THINK_TEXT_TOOLS))
    summary = [(n, p.get("index"), (p.get("delta") or p.get("content_block") or {}).get("type"))
               for n, p in frames]
    assert summary == [
        ("message_start", None, None), ("ping", None, None),
        ("content_block_start", 0, "thinking"),
        ("content_block_delta", 0, "thinking_delta"), ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "signature_delta"), ("content_block_stop", 0, None),
        ("content_block_start", 1, "text"),
        ("content_block_delta", 1, "text_delta"), ("content_block_delta", 1, "text_delta"),
        ("content_block_stop", 1, None),
        ("content_block_start", 2, "tool_use"),
        ("content_block_delta", 2, "input_json_delta"), ("content_block_delta", 2, "input_json_delta"),
        ("content_block_stop", 2, None),
        ("content_block_start", 3, "tool_use"), ("content_block_delta", 3, "input_json_delta"),
        ("content_block_stop", 3, None),
        ("message_delta", None, None), ("message_stop", None, None),
    ]
    delta = frames[-2][1]
    assert delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert delta["usage"] == {"input_tokens": 20, "output_tokens": 12, "cache_read_input_tokens": 10}
    assert delta["router"] == ROUTER
    assert frames[0][1]["message"]["usage"] == {"input_tokens": 20, "output_tokens": 0}


def sdk_client(sse: bytes) -> anthropic.Anthropic:
    """The real SDK client; the transport (the network boundary) answers with ``sse``."""
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=sse, headers={"content-type": "text/event-stream"})
    return anthropic.Anthropic(api_key="test", base_url="http://gateway.invalid",
                               http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))


def test_sdk_stream_accumulates_the_same_message_as_the_json_answer() -> None:
    client = sdk_client(render(THINK_TEXT_TOOLS))
    with client.messages.stream(model="auto", max_tokens=100, messages=[{"role": "user", "content": "x"}]) as s:
        texts = list(s.text_stream)
        final = s.get_final_message()
    assert "".join(texts) == "Calling tools."
    json_answer = from_chat_response(answer({
        "content": "Calling tools.", "reasoning_content": "Thinking.",
        "tool_calls": [{"id": "call_a", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
                       {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
        finish="tool_calls"), model="auto")
    streamed = final.model_dump(exclude_none=True)
    expected = MESSAGE.validate_python(json_answer).model_dump(exclude_none=True)
    streamed.pop("id"), expected.pop("id")
    assert expected.pop("router") == ROUTER  # streamed, the router object rides on message_delta
    assert streamed == expected


def test_sdk_create_parses_the_json_message() -> None:
    out = from_chat_response(answer({"content": "Hello.", "reasoning_content": "Greet."}), model="auto")
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=orjson.dumps(out), headers={"content-type": "application/json"})
    client = anthropic.Anthropic(api_key="test", base_url="http://gateway.invalid",
                                 http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
    message = client.messages.create(model="auto", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert [b.type for b in message.content] == ["thinking", "text"] and message.content[1].text == "Hello."  # type: ignore[union-attr]


def test_text_only_stream_and_sdk_text_stream() -> None:
    data = render([chunk({"content": "Hel"}), chunk({"content": "lo"}, finish="stop"), chunk(None, usage=USAGE)])
    frames = validate_stream(data)
    assert [n for n, _ in frames].count("content_block_start") == 1
    with sdk_client(data).messages.stream(model="auto", max_tokens=5, messages=[]) as s:
        assert "".join(s.text_stream) == "Hello"
        assert s.get_final_message().stop_reason == "end_turn"


def test_usage_and_router_given_at_finish() -> None:
    """The pipeline's AnswerStream collects usage and the router object apart from the chunks."""
    renderer = MessagesStreamRenderer(model="m")
    data = renderer.start() + renderer.feed(chunk({"content": "x"}, finish="stop")) \
        + renderer.finish(usage=USAGE, router=ROUTER)
    delta = validate_stream(data)[-2][1]
    assert delta["usage"]["output_tokens"] == 12 and delta["router"] == ROUTER
    out = from_chat_response(answer({"content": "x"}) | {"router": None}, model="m", router={"route": "r"})
    assert out["router"] == {"route": "r"}


def test_thinking_display_omitted() -> None:
    body = {**BASE, "max_tokens": 4096, "thinking": {"type": "enabled", "budget_tokens": 2048, "display": "omitted"}}
    assert am.omit_thinking(body) and not am.omit_thinking(BASE)
    out = from_chat_response(answer({"content": "x", "reasoning_content": "secret"}), model="m", omit_thinking=True)
    assert out["content"][0] == {"type": "thinking", "thinking": "", "signature": thinking_signature("secret")}
    assert_strict(MESSAGE.validate_python(out), out)
    renderer = MessagesStreamRenderer(model="m", omit_thinking=True)
    frames = validate_stream(renderer.feed(chunk({"reasoning_content": "secret"})) + renderer.finish())
    deltas = [p["delta"]["type"] for n, p in frames if n == "content_block_delta"]
    assert deltas == ["signature_delta"] and b"secret" not in b"".join(orjson.dumps(p) for _, p in frames)


def test_empty_stream_still_closes_properly() -> None:
    renderer = MessagesStreamRenderer(model="m")
    frames = validate_stream(renderer.finish())
    assert [n for n, _ in frames] == ["message_start", "ping", "message_delta", "message_stop"]
    assert renderer.finish() == b""  # idempotent


def test_stream_stop_sequence() -> None:
    data = render([chunk({"content": "a"}), chunk({}, finish="stop", ) | {"choices": [
        {"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": "END"}]}], stop_sequences=["END"])
    delta = validate_stream(data)[-2][1]
    assert delta["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}


def test_mid_stream_error_event_ends_the_stream_and_the_sdk_raises() -> None:
    renderer = MessagesStreamRenderer(model="m")
    data = renderer.start() + renderer.feed(chunk({"content": "partial"})) + renderer.error(502, "upstream broke")
    frames = validate_stream(data)
    assert frames[-1] == ("error", {"type": "error", "error": {"type": "api_error", "message": "upstream broke"}})
    assert renderer.finish() == b""  # nothing after an error
    with pytest.raises(anthropic.APIStatusError, match="upstream broke"), \
            sdk_client(data).messages.stream(model="m", max_tokens=5, messages=[]) as s:
        list(s.text_stream)


def test_feed_before_start_starts_the_message() -> None:
    renderer = MessagesStreamRenderer(model="m")
    frames = validate_stream(renderer.feed(chunk({"content": "x"})) + renderer.finish())
    assert frames[0][0] == "message_start"


def test_models_page_reads_with_the_sdk() -> None:
    page = models_page(["auto", "auto:thinking", "kimi:instant"])
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=orjson.dumps(page), headers={"content-type": "application/json"})
    client = anthropic.Anthropic(api_key="test", base_url="http://gateway.invalid",
                                 http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
    models = client.models.list()
    assert [m.id for m in models.data] == ["auto", "auto:thinking", "kimi:instant"]
    for raw, model in zip(page["data"], models.data, strict=True):
        assert_strict(model, raw)
    assert models.has_more is False and models.last_id == "kimi:instant"


# --- requests as the real SDK sends them ---------------------------------------------------------


class Recorder:
    """The SDK's transport: records each request body, answers with ``answer`` (the network boundary)."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.bodies: list[dict[str, Any]] = []
        self.client = anthropic.Anthropic(api_key="test", base_url="http://gateway.invalid",
                                          http_client=httpx2.Client(transport=httpx2.MockTransport(self)))

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.bodies.append(orjson.loads(request.content))
        return httpx2.Response(200, content=orjson.dumps(self.answer), headers={"content-type": "application/json"})


WEATHER_TOOL = {"name": "get_weather", "description": "Weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def test_sdk_tool_use_round_trip_with_thinking_and_an_image_converts() -> None:
    """The SDK's own serialisation of a first turn, and of the Message it got back sent as history."""
    first = from_chat_response(answer({
        "content": "Checking.", "reasoning_content": "Use the tool.",
        "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]}, "tool_calls"),
        model="auto")
    sdk = Recorder(first)
    user_turn = {"role": "user", "content": [
        {"type": "text", "text": "Weather where this photo was taken?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}
    message = sdk.client.messages.create(
        model="auto", max_tokens=4096, system="Be terse.", messages=[user_turn],  # type: ignore[list-item]
        tools=[WEATHER_TOOL], tool_choice={"type": "auto"},  # type: ignore[list-item]
        thinking={"type": "enabled", "budget_tokens": 2048}, stop_sequences=["END"],
        metadata={"user_id": "u-7"}, extra_body={"temperature": 1.0})  # no longer a create() argument
    sdk.client.messages.create(
        model="auto", max_tokens=4096, system="Be terse.", tools=[WEATHER_TOOL],  # type: ignore[list-item]
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[user_turn, {"role": "assistant", "content": message.content},  # type: ignore[list-item]
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": message.content[2].id,  # type: ignore[union-attr]
                                                "content": "12 °C, rain"}]}])
    turn1, turn2 = (am.to_chat_request(body) for body in sdk.bodies)
    assert am.mode_hint(sdk.bodies[0]) == "agent"  # thinking, with tools
    assert turn1["messages"][0] == {"role": "system", "content": "Be terse."}
    assert turn1["messages"][1]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert turn1["tools"][0]["function"]["name"] == "get_weather" and turn1["tool_choice"] == "auto"
    assert (turn1["stop"], turn1["user"], turn1["temperature"]) == (["END"], "u-7", 1.0)
    assert turn2["messages"][2:] == [
        {"role": "assistant", "content": "Checking.", "reasoning_content": "Use the tool.",
         "tool_calls": [{"id": "call_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "12 °C, rain"},
    ]
    # The thinking block went back with our signature: an adapter can tell it is not Claude's.
    assert am.is_router_signature(sdk.bodies[1]["messages"][1]["content"][0]["signature"])


async def test_async_sdk_stream_reads_the_rendered_events() -> None:
    data = render(THINK_TEXT_TOOLS)

    async def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=data, headers={"content-type": "text/event-stream"})
    client = anthropic.AsyncAnthropic(api_key="test", base_url="http://gateway.invalid",
                                      http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))
    async with client.messages.stream(model="auto", max_tokens=100, messages=[]) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "Calling tools." and final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use", "tool_use"]
    await client.close()
