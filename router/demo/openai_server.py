"""The OpenAI Chat Completions API as vLLM/SGLang serve Kimi K2.5 (`vllm`, `sglang`) or as OpenAI
serves GPT (`openai`): `/v1/chat/completions`, `/v1/models`, `/metrics`, `/health`, `/_demo/*`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any

import orjson
from aiohttp import web

from router.demo import engine_metrics, vendor_rules
from router.demo.answers import Reply, fragments
from router.demo.completion import finish
from router.demo.conversation import from_openai
from router.demo.http_common import (
    STATE_KEY,
    EventSink,
    Pacer,
    abort_stream,
    add_control_routes,
    check_auth,
    json_response,
    read_json,
    record_request,
    serve_planned,
    start_stream,
    state_of,
)
from router.demo.quality import JUDGE_MODEL, judge_reply, mark_answer
from router.demo.replies import Planned, plan_reply, stop_list
from router.demo.server_state import DemoServerState
from router.demo.tool_schema import schema_problem

_ENGINE_NAMES = {"vllm": "demo vLLM", "sglang": "demo SGLang"}
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 429: "rate_limit_exceeded", 503: "service_unavailable"}
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def openai_error(status: int, message: str, *, param: str | None = None, code: str | None = None) -> web.Response:
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    shown: str | int | None = code or {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status, status)
    return json_response({"error": {"message": message, "type": kind, "param": param, "code": shown}},
                         status=status)


def mode_of(kind: str, body: dict[str, Any]) -> str:
    """Kimi's way of working for this request; vendors have the single mode `default`."""
    if kind == "openai":
        return "default"
    template = body.get("chat_template_kwargs") or {}
    thinking = body.get("thinking")
    if (
        isinstance(template, dict)
        and (template.get("thinking") is False or template.get("enable_thinking") is False)
    ) or (isinstance(thinking, dict) and thinking.get("type") == "disabled"):
        return "instant"
    return "agent" if body.get("tools") else "thinking"


def validate(kind: str, body: Any) -> tuple[str, str | None] | tuple[str, str | None, str | None] | None:
    """(message, param[, code]) for an invalid request, None when it is acceptable."""
    if not isinstance(body, dict):
        return "Request body must be a JSON object.", None
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' is required and must be a non-empty array.", "messages"
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            return f"messages[{i}] must be an object with a 'role' in {sorted(_ROLES)}.", f"messages[{i}]"
    if kind in ("openai", "moonshot") and not isinstance(body.get("model"), str):
        return "'model' is required.", "model"
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not all(
            isinstance(t, dict) and isinstance((t.get("function") or {}).get("name"), str) for t in tools
        ):
            return "'tools' must be an array of {type: 'function', function: {name, parameters}}.", "tools"
        for i, tool in enumerate(tools):
            parameters = tool["function"].get("parameters")
            where = f"tools[{i}].function.parameters"
            if parameters is not None and (problem := schema_problem(parameters, where)) is not None:
                return problem, where
    for field in ("max_tokens", "max_completion_tokens"):
        value = body.get(field)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            return f"'{field}' must be an integer >= 1.", field
    # What the real vendor refuses (router/demo/vendor_rules.py).
    refusal = vendor_rules.openai_refusal(body) if kind == "openai" else (
        vendor_rules.moonshot_refusal(body) if kind == "moonshot" else None)
    return refusal


def who_answers(kind: str, model: str, mode: str) -> str:
    if kind in _ENGINE_NAMES:
        return f"Kimi K2.5 ({mode} mode via {_ENGINE_NAMES[kind]})"
    if kind == "moonshot":
        return f"Kimi K2.5 ({mode} mode via demo Moonshot API)"
    return f"{model} (via demo OpenAI)"


def plan_openai(state: DemoServerState, body: dict[str, Any]) -> Planned:
    kind = state.spec.kind
    mode = mode_of(kind, body)
    model = str(body.get("model") or state.spec.served_model)
    tools = [t["function"] for t in body.get("tools") or []]
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if kind == "openai" and model == JUDGE_MODEL:  # the demo judge grades from the latent quality
        conv = from_openai(body["messages"], [])
        return Planned("default", "chat", conv, finish(Reply(None, judge_reply(state.quality, body["messages"])),
                                                       max_tokens=None, stop=[]))
    planned = plan_reply(
        from_openai(body["messages"], tools),
        who=who_answers(kind, model, mode),
        mode=mode,
        reasoning=kind != "openai" and mode != "instant",
        tools=tools,
        tool_choice=body.get("tool_choice"),
        call_id=state.next_id("call_"),
        max_tokens=max_tokens,
        stop=stop_list(body.get("stop")),
        json_mode=_format_type(body) == "json_object",
        json_schema=_format_schema(body),
    )
    return mark_answer(state.quality, planned, server=state.spec.name, kind=kind, model=model)


def _format_type(body: dict[str, Any]) -> str | None:
    fmt = body.get("response_format")
    return str(fmt.get("type")) if isinstance(fmt, dict) else None


def _format_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The schema of a `json_schema` response format (OpenAI, vLLM and Moonshot share the shape)."""
    if _format_type(body) != "json_schema":
        return None
    spec = body["response_format"].get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else {"type": "object"}


def _usage(planned: Planned) -> dict[str, Any]:
    completion = planned.completion
    prompt = planned.conversation.prompt_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": prompt + completion.completion_tokens,
        "completion_tokens_details": {"reasoning_tokens": len(completion.reasoning)},
    }


def _tool_call_json(planned: Planned) -> list[dict[str, Any]] | None:
    call = planned.completion.tool_call
    if call is None:
        return None
    return [{"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}]


async def chat_completions(request: web.Request) -> web.StreamResponse:
    arrival = time.monotonic()
    state = state_of(request)
    state.stats.requests += 1
    body, error = await read_json(request)
    record_request(state, request, body)
    if not check_auth(state, request):
        state.stats.rejected += 1
        return openai_error(401, "Incorrect API key provided.")
    invalid = (error, None) if error else validate(state.spec.kind, body)
    if invalid is not None:
        state.stats.rejected += 1
        return openai_error(400, invalid[0], param=invalid[1], code=invalid[2] if len(invalid) > 2 else None)
    refused = next((p for p in state.behavior.refused_params if p in body), None)
    if refused is not None:  # OpenAI's words for a parameter the model does not take
        state.stats.rejected += 1
        return openai_error(400, f"Unsupported parameter: '{refused}' is not supported with this model.",
                            param=refused, code="unsupported_parameter")
    planned = plan_openai(state, body)

    def answer(start: float) -> Awaitable[web.StreamResponse]:
        if body.get("stream"):
            return _stream(request, state, body, planned, arrival, start)
        return _respond(state, body, planned, arrival, start)

    return await serve_planned(state, planned.mode, planned.role, openai_error, answer)


async def _respond(state: DemoServerState, body: dict[str, Any], planned: Planned, arrival: float,
                   start: float) -> web.Response:
    completion = planned.completion
    pacer = Pacer(state, start)
    await pacer.wait_for_token(max(0, completion.completion_tokens - 1))
    state.ttft.observe(max(0.0, pacer.due(0) - arrival))
    message: dict[str, Any] = {"role": "assistant", "content": completion.content_text or None}
    if completion.reasoning and state.spec.kind != "openai":
        message[state.behavior.reasoning_field] = completion.reasoning_text
    tool_calls = _tool_call_json(planned)
    if tool_calls:
        message["tool_calls"] = tool_calls
    elif message["content"] is None:
        message["content"] = ""
    _count_tokens(state, planned)
    state.stats.completed += 1
    return json_response({
        "id": state.next_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(body.get("model") or state.spec.served_model),
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": completion.finish_reason}],
        "usage": _usage(planned),
        "system_fingerprint": None,
    })


def _count_tokens(state: DemoServerState, planned: Planned) -> None:
    state.prompt_tokens_total += planned.conversation.prompt_tokens
    state.generation_tokens_total += planned.completion.completion_tokens


async def _stream(request: web.Request, state: DemoServerState, body: dict[str, Any], planned: Planned,
                  arrival: float, start: float) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream",
                                           "cache-control": "no-cache"})
    await start_stream(response, request)
    pacer = Pacer(state, start)
    sink = EventSink(response, buffered=not pacer.paced)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    head = {"id": state.next_id("chatcmpl-"), "object": "chat.completion.chunk",
            "created": int(time.time()), "model": str(body.get("model") or state.spec.served_model)}
    fail_after = state.behavior.fail_after_chunks
    reasoning_field = state.behavior.reasoning_field

    # Chunks differ only in the delta: serialise the rest once (a fast stream is mostly framing).
    prefix = b"data: " + orjson.dumps(head)[:-1] + b',"choices":[{"index":0,"delta":'
    usage_null = b',"usage":null' if include_usage else b""

    def frame(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        tail = b',"logprobs":null,"finish_reason":' + orjson.dumps(finish_reason) + b"}]"
        return prefix + orjson.dumps(delta) + tail + usage_null + b"}\n\n"

    completion = planned.completion
    deltas: list[dict[str, Any]] = [{reasoning_field: p} for p in completion.reasoning]
    deltas += [{"content": p} for p in completion.content]
    if completion.tool_call is not None:
        call = completion.tool_call
        deltas.append({"tool_calls": [{"index": 0, "id": call.id, "type": "function",
                                       "function": {"name": call.name, "arguments": ""}}]})
        deltas += [{"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]}
                   for fragment in fragments(call.arguments)]

    await sink.send(frame({"role": "assistant", "content": ""}))
    for index, delta in enumerate(deltas):
        if fail_after is not None and index >= fail_after:
            await abort_stream(request, sink)
            return response
        await pacer.wait_for_token(index)
        if index == 0:
            state.ttft.observe(time.monotonic() - arrival)
        await sink.send(frame(delta))
    if fail_after is not None:  # a shorter stream still never completes
        await abort_stream(request, sink)
        return response
    await sink.send(frame({}, completion.finish_reason))
    if include_usage:
        await sink.send(b"data: " + orjson.dumps({**head, "choices": [], "usage": _usage(planned)}) + b"\n\n")
    await sink.send(b"data: [DONE]\n\n")
    await sink.finish()
    _count_tokens(state, planned)
    state.stats.completed += 1
    return response


async def list_models(request: web.Request) -> web.Response:
    state = state_of(request)
    model = state.spec.served_model
    owner = {"vllm": "vllm", "sglang": "sglang"}.get(state.spec.kind, "openai")
    entry = {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": owner}
    if state.spec.kind in _ENGINE_NAMES:
        entry |= {"root": model, "max_model_len": 262_144}
    return json_response({"object": "list", "data": [entry]})


async def metrics(request: web.Request) -> web.Response:
    state = state_of(request)
    if state.spec.kind not in _ENGINE_NAMES:
        return web.Response(status=404, text="no engine metrics on a vendor API\n")
    return web.Response(body=engine_metrics.render(state).encode(),
                        headers={"content-type": "text/plain; version=0.0.4; charset=utf-8"})


def create_app(state: DemoServerState) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)  # images arrive inline as base64
    app[STATE_KEY] = state
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/metrics", metrics)
    add_control_routes(app)
    return app


__all__ = ["create_app", "mode_of", "plan_openai", "validate"]
