"""The Anthropic Messages API (`POST /v1/messages`) as Claude serves it, plus `/v1/models`, `/_demo/*`."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any

import orjson
from aiohttp import web

from router.demo import vendor_rules
from router.demo.answers import fragments, keywords
from router.demo.conversation import Conversation, from_anthropic
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
from router.demo.quality import mark_answer
from router.demo.replies import Planned, plan_reply, stop_list
from router.demo.server_state import DemoServerState
from router.demo.tool_schema import schema_problem

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                529: "overloaded_error"}
_BLOCK_TYPES = frozenset({"text", "image", "document", "tool_use", "tool_result", "thinking",
                          "redacted_thinking", "search_result", "server_tool_use", "web_search_tool_result"})
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def anthropic_error(status: int, message: str) -> web.Response:
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return json_response({"type": "error", "error": {"type": kind, "message": message}}, status=status,
                         headers={"request-id": f"req_demo_{time.monotonic_ns():x}"})


def _validate_blocks(where: str, content: Any) -> str | None:
    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return f"{where}.content: Input should be a valid string or a list of content blocks"
    for j, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") not in _BLOCK_TYPES:
            return (f"{where}.content.{j}: unknown or missing block type "
                    f"(expected one of {sorted(_BLOCK_TYPES)})")
        kind = block["type"]
        if kind == "text" and not isinstance(block.get("text"), str):
            return f"{where}.content.{j}.text: Field required"
        if kind == "image":
            source = block.get("source") or {}
            ok = (source.get("type") == "base64" and isinstance(source.get("data"), str)
                  and isinstance(source.get("media_type"), str)) or (
                source.get("type") == "url" and isinstance(source.get("url"), str))
            if not ok:
                return f"{where}.content.{j}.source: expected a base64 (media_type, data) or url source"
        if kind == "tool_use" and not (
            isinstance(block.get("id"), str) and isinstance(block.get("name"), str)
        ):
            return f"{where}.content.{j}: tool_use needs 'id' and 'name'"
        if kind == "tool_result" and not isinstance(block.get("tool_use_id"), str):
            return f"{where}.content.{j}.tool_use_id: Field required"
    return None


def validate(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "Request body must be a JSON object."
    if not isinstance(body.get("model"), str):
        return "model: Field required"
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "max_tokens: Field required (an integer >= 1)"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: Field required (a non-empty list)"
    system = body.get("system")
    if system is not None and not isinstance(system, str) and not (
        isinstance(system, list) and all(isinstance(b, dict) and b.get("type") == "text" for b in system)
    ):
        return "system: Input should be a valid string or a list of text blocks"
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        problem = _validate_blocks(f"messages.{i}", message.get("content"))
        if problem:
            return problem
    tools = body.get("tools")
    if tools is not None and not (
        isinstance(tools, list) and all(isinstance(t, dict) and (isinstance(t.get("name"), str)
                                                                 or t.get("type") == "mcp_toolset") for t in tools)
    ):
        return "tools: each tool needs a 'name' and an 'input_schema'"
    for i, tool in enumerate(tools or ()):
        if "input_schema" in tool and (problem := schema_problem(tool["input_schema"], f"tools.{i}.input_schema")):
            return problem
    return vendor_rules.anthropic_refusal(body)  # what the real API refuses


# Body fields the real API takes only with their beta in ``anthropic-beta`` (platform.claude.com/docs/en/
# api/beta-headers; structured outputs, context editing, the MCP connector): without it, a 400.
_BETA_FIELDS = {"output_format": "structured-outputs-", "context_management": "context-management-",
                "mcp_servers": "mcp-client-"}


def beta_problem(body: Any, betas: str) -> str | None:
    if not isinstance(body, dict):
        return None
    enabled = [b.strip() for b in betas.split(",")]
    for field, beta in _BETA_FIELDS.items():
        if field in body and not any(b.startswith(beta) for b in enabled):
            return f"{field}: Extra inputs are not permitted (it needs the {beta}… anthropic-beta header)"
    return None


def web_search(body: dict[str, Any], conv: Conversation) -> dict[str, Any] | None:
    """Claude's web search (the web_search_… server tool): searched when it is offered and the last
    user turn asks to search; None otherwise."""
    tool: dict[str, Any] | None = next(
        (t for t in body.get("tools") or () if str(t.get("type", "")).startswith("web_search_")), None)
    if tool is None or conv.tool_result is not None or "search" not in conv.last_user.lower():
        return None
    return tool


def search_blocks(state: DemoServerState, tool: dict[str, Any], question: str) -> list[dict[str, Any]]:
    """The ``server_tool_use`` and ``web_search_tool_result`` blocks of one search, in the shape of
    the web search tool page's response (platform.claude.com/docs/en/agents-and-tools/tool-use/web-search-tool)."""
    query = " ".join(keywords(question, 4)) or "search"
    call_id = state.next_id("srvtoolu_")
    slug = "-".join(query.lower().split())
    results = [{"type": "web_search_result", "url": f"https://demo.example/{slug}/{n}", "title": f"{query} ({n})",
                "encrypted_content": f"demo-{slug}-{n}", "page_age": None} for n in (1, 2)]
    return [{"type": "server_tool_use", "id": call_id, "name": str(tool.get("name") or "web_search"),
             "input": {"query": query}},
            {"type": "web_search_tool_result", "tool_use_id": call_id, "content": results}]


def plan_anthropic(state: DemoServerState, body: dict[str, Any]) -> Planned:
    thinking = body.get("thinking")
    mode = "thinking" if isinstance(thinking, dict) and thinking.get("type") == "enabled" else "default"
    conv = from_anthropic(body.get("system"), body["messages"], body.get("tools") or ())
    # server tools (web search, …) have no schema: never "called" as client tools; a search answers in text
    tools = [] if web_search(body, conv) else [
        {"name": t["name"], "parameters": t.get("input_schema") or {}} for t in body.get("tools") or []
        if "input_schema" in t]
    planned = plan_reply(
        conv,
        who=f"{body['model']} (via demo Anthropic)",
        mode=mode,
        reasoning=mode == "thinking",
        tools=tools,
        tool_choice=body.get("tool_choice"),
        call_id=state.next_id("toolu_"),
        max_tokens=body["max_tokens"],
        stop=stop_list(body.get("stop_sequences")),
        json_schema=_output_schema(body),
    )
    return mark_answer(state.quality, planned, server=state.spec.name, kind="anthropic", model=str(body["model"]))


def _output_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """Structured outputs (`output_format: {"type": "json_schema", "schema": ...}`, or the same object
    as `output_config.format`)."""
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) and "format" in config else body.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        return dict(fmt["schema"])
    return None


def _stop(planned: Planned) -> tuple[str, str | None]:
    completion = planned.completion
    if completion.stop_sequence is not None:
        return "stop_sequence", completion.stop_sequence
    return _STOP_REASONS[completion.finish_reason], None


def _signature(text: str) -> str:
    return f"demo-signature-{len(text):x}"


async def messages(request: web.Request) -> web.StreamResponse:
    arrival = time.monotonic()
    state = state_of(request)
    state.stats.requests += 1
    body, error = await read_json(request)
    record_request(state, request, body)
    if not check_auth(state, request):
        state.stats.rejected += 1
        return anthropic_error(401, "invalid x-api-key")
    problem = error or validate(body) or beta_problem(body, request.headers.get("anthropic-beta", ""))
    if problem is not None:
        state.stats.rejected += 1
        return anthropic_error(400, problem)
    planned = plan_anthropic(state, body)

    def answer(start: float) -> Awaitable[web.StreamResponse]:
        if body.get("stream"):
            return _stream(request, state, body, planned, arrival, start)
        return _respond(state, body, planned, arrival, start)

    return await serve_planned(state, planned.mode, planned.role, anthropic_error, answer)


def _usage(planned: Planned, *, searches: int = 0) -> dict[str, Any]:
    usage: dict[str, Any] = {"input_tokens": planned.conversation.prompt_tokens,
                             "output_tokens": planned.completion.completion_tokens,
                             "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    if searches:
        usage["server_tool_use"] = {"web_search_requests": searches, "web_fetch_requests": 0}
    return usage


def _searched(state: DemoServerState, body: dict[str, Any], planned: Planned) -> list[dict[str, Any]]:
    tool = web_search(body, planned.conversation)
    return search_blocks(state, tool, planned.conversation.last_user) if tool is not None else []


async def _respond(state: DemoServerState, body: dict[str, Any], planned: Planned, arrival: float,
                   start: float) -> web.Response:
    completion = planned.completion
    pacer = Pacer(state, start)
    await pacer.wait_for_token(max(0, completion.completion_tokens - 1))
    state.ttft.observe(max(0.0, pacer.due(0) - arrival))
    content: list[dict[str, Any]] = []
    if completion.reasoning:
        text = completion.reasoning_text
        content.append({"type": "thinking", "thinking": text, "signature": _signature(text)})
    searched = _searched(state, body, planned)
    content.extend(searched)
    if completion.content or completion.tool_call is None:
        content.append({"type": "text", "text": completion.content_text})
    if completion.tool_call is not None:
        call = completion.tool_call
        content.append({"type": "tool_use", "id": call.id, "name": call.name,
                        "input": orjson.loads(call.arguments)})
    stop_reason, stop_sequence = _stop(planned)
    state.stats.completed += 1
    return json_response({
        "id": state.next_id("msg_"), "type": "message", "role": "assistant", "model": body["model"],
        "content": content, "stop_reason": stop_reason, "stop_sequence": stop_sequence,
        "usage": _usage(planned, searches=len(searched) // 2),
    })


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def _stream(request: web.Request, state: DemoServerState, body: dict[str, Any], planned: Planned,
                  arrival: float, start: float) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
    await start_stream(response, request)
    pacer = Pacer(state, start)
    sink = EventSink(response, buffered=not pacer.paced)
    completion = planned.completion
    fail_after = state.behavior.fail_after_chunks

    # Content blocks as (start block, [delta, …], trailing deltas without a token) in the real order.
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]] = []
    if completion.reasoning:
        blocks.append(({"type": "thinking", "thinking": "", "signature": ""},  # as the API opens it
                       [{"type": "thinking_delta", "thinking": p} for p in completion.reasoning],
                       [{"type": "signature_delta", "signature": _signature(completion.reasoning_text)}]))
    searched = _searched(state, body, planned)
    if searched:  # the search call's input streams as JSON; its results come whole in their start event
        search_call, results = searched
        blocks.append(({**search_call, "input": {}}, [{
            "type": "input_json_delta", "partial_json": orjson.dumps(search_call["input"]).decode()}], []))
        blocks.append((results, [], []))
    if completion.content or completion.tool_call is None:
        blocks.append(({"type": "text", "text": ""},
                       [{"type": "text_delta", "text": p} for p in completion.content], []))
    if completion.tool_call is not None:
        call = completion.tool_call
        blocks.append(({"type": "tool_use", "id": call.id, "name": call.name, "input": {}},
                       [{"type": "input_json_delta", "partial_json": f} for f in fragments(call.arguments)],
                       []))

    usage = _usage(planned, searches=len(searched) // 2)
    await sink.send(_event("message_start", {"type": "message_start", "message": {
        "id": state.next_id("msg_"), "type": "message", "role": "assistant", "model": body["model"],
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1}}}))
    token = 0
    for index, (block, deltas, trailing) in enumerate(blocks):
        await sink.send(_event("content_block_start", {"type": "content_block_start", "index": index,
                                                       "content_block": block}))
        if index == 0:
            await sink.send(_event("ping", {"type": "ping"}))
        for delta in deltas:
            if fail_after is not None and token >= fail_after:
                await abort_stream(request, sink)
                return response
            await pacer.wait_for_token(token)
            if token == 0:
                state.ttft.observe(time.monotonic() - arrival)
            token += 1
            await sink.send(_event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                           "delta": delta}))
        for delta in trailing:
            await sink.send(_event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                           "delta": delta}))
        await sink.send(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    if fail_after is not None:
        await abort_stream(request, sink)
        return response
    stop_reason, stop_sequence = _stop(planned)
    await sink.send(_event("message_delta", {
        "type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
        "usage": {k: v for k, v in usage.items() if k in ("output_tokens", "server_tool_use")}}))
    await sink.send(_event("message_stop", {"type": "message_stop"}))
    await sink.finish()
    state.stats.completed += 1
    return response


async def list_models(request: web.Request) -> web.Response:
    model = state_of(request).spec.served_model
    entry = {"type": "model", "id": model, "display_name": model, "created_at": "2025-09-29T00:00:00Z"}
    return json_response({"data": [entry], "has_more": False, "first_id": model, "last_id": model})


def create_app(state: DemoServerState) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE_KEY] = state
    app.router.add_post("/v1/messages", messages)
    app.router.add_get("/v1/models", list_models)
    add_control_routes(app)
    return app
