"""Anthropic's Messages API → the chat shape: requests, count_tokens, and Anthropic's error shape.

References (Anthropic's published API):
- request: https://docs.claude.com/en/api/messages
- errors: https://docs.claude.com/en/api/errors — ``{"type": "error", "error": {"type", "message"}}``.
Answers and stream events are rendered by ``anthropic_rendering``.

Requests become Chat Completions bodies: Kimi, GPT and vLLM speak that shape, and the router's
classifier, engine and dispatch already read it. Earlier thinking blocks become ``reasoning_content``
on assistant messages (Moonshot asks for it to be kept across tool-call turns).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from router.dispatch.upstream import NativeRequest
from router.engine.anthropic_tools import MCP_TOOLSET, is_anthropic_tool
from router.engine.request_facts import extract_facts
from router.errors import InvalidRequest, RouterError

# --- errors ----------------------------------------------------------------------------------

# HTTP status → Anthropic error type (docs above; 504 → timeout_error as in the SDK's ErrorType).
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                429: "rate_limit_error", 500: "api_error", 502: "api_error", 503: "overloaded_error",
                504: "timeout_error", 529: "overloaded_error"}


def error_type(status: int) -> str:
    """Anthropic's error type for an HTTP status; other 4xx are ``invalid_request_error`` (as documented)."""
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def error_object(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(status), "message": message}}


def error_body(status: int, message: str) -> bytes:
    """The JSON body of an error response in Anthropic's shape."""
    return orjson.dumps(error_object(status, message))


def render_error(exc: RouterError) -> tuple[int, bytes, dict[str, str]]:
    """(status, body, headers) for any router error, e.g. ``retry-after`` on 429."""
    return exc.status, error_body(exc.status, exc.message), dict(exc.headers)


class MessagesRequestInvalid(InvalidRequest):
    """A client mistake in a Messages request: 400, rendered in Anthropic's shape."""

    def body(self) -> dict[str, Any]:
        return error_object(self.status, self.message)


def _fail(message: str, param: str | None = None) -> MessagesRequestInvalid:
    return MessagesRequestInvalid(message, param=param)


# --- request ---------------------------------------------------------------------------------

_ROLES = ("user", "assistant")


def _text_of(content: Any, where: str) -> str:
    """A string, or the text of a list of ``text`` blocks (system prompts, tool results)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _fail(f"{where} must be a string or a list of text blocks.", where)
    texts = []
    for i, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise _fail(f"{where}[{i}] must be a text block {{'type': 'text', 'text': ...}}.", f"{where}[{i}]")
        texts.append(block["text"])
    return "\n".join(texts)


def _image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _fail(f"{where}.source is required for an image block.", f"{where}.source")
    kind = source.get("type")
    if kind == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        if not isinstance(media_type, str) or not isinstance(data, str):
            raise _fail(f"{where}.source needs 'media_type' and 'data' for a base64 image.", f"{where}.source")
        return {"type": "image_url", "image_url": {"url": f"data:{media_type};base64,{data}"}}
    if kind == "url" and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise _fail(f"{where}.source.type must be 'base64' or 'url' (with its fields); got {kind!r}.",
                f"{where}.source.type")


def _document_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "base64" and isinstance(source.get("data"), str):
        media_type = source.get("media_type") or "application/pdf"
        # Chat Completions' file part (https://platform.openai.com/docs/api-reference/chat/create).
        return {"type": "file", "file": {"file_data": f"data:{media_type};base64,{source['data']}"}}
    if isinstance(source, dict) and source.get("type") == "text" and isinstance(source.get("data"), str):
        return {"type": "text", "text": source["data"]}
    raise _fail(f"{where}: only base64 and text document sources can be routed.", f"{where}.source")


def _search_result_text(block: dict[str, Any], where: str) -> str:
    """A ``search_result`` block (search results with citations, platform.claude.com/docs/en/
    build-with-claude/search-results: ``source``, ``title``, text ``content``) as text another model
    reads; Claude gets the block itself."""
    source, title, content = block.get("source"), block.get("title"), block.get("content")
    if not isinstance(source, str) or not isinstance(title, str) or not isinstance(content, list):
        raise _fail(f"{where}: a search_result needs 'source', 'title' and a list of text blocks as 'content'.",
                    where)
    return "\n".join([f"[{title}]({source})", _text_of(content, f"{where}.content")])


def _tool_result(block: dict[str, Any], where: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``tool`` message for a tool_result, and any images it carried (sent in a user turn after)."""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise _fail(f"{where}.tool_use_id is required.", f"{where}.tool_use_id")
    content = block.get("content", "")
    images: list[dict[str, Any]] = []
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind == "image":
                images.append(_image_part(part, f"{where}.content[{j}]"))
            elif kind == "search_result":
                texts.append(_search_result_text(part, f"{where}.content[{j}]"))
            else:
                raise _fail(f"{where}.content[{j}] must be a text, image or search_result block.",
                            f"{where}.content[{j}]")
        text = "\n".join(texts)
    else:
        raise _fail(f"{where}.content must be a string or a list of blocks.", f"{where}.content")
    if block.get("is_error"):
        # Chat Completions has no error flag on tool messages; say it in the text the model reads.
        text = f"[tool error] {text}"
    return {"role": "tool", "tool_call_id": call_id, "content": text}, images


def _user_messages(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise _fail(f"{where}.content must be a string or a list of content blocks.", f"{where}.content")
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        at = f"{where}.content[{i}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append(_image_part(block, at))
        elif kind == "document":
            parts.append(_document_part(block, at))
        elif kind == "search_result":
            parts.append({"type": "text", "text": _search_result_text(block, at)})
        elif kind == "tool_result":
            message, images = _tool_result(block, at)
            tool_messages.append(message)
            parts.extend(images)
        else:
            raise _fail(f"{at}: content block type {kind!r} is not supported in a user turn "
                        "(text, image, document, search_result, tool_result).", f"{at}.type")
    # Chat Completions wants tool messages right after the assistant turn that called the tools.
    out = tool_messages
    if len(parts) == 1 and parts[0]["type"] == "text":
        out.append({"role": "user", "content": parts[0]["text"]})
    elif parts:
        out.append({"role": "user", "content": parts})
    return out


def _assistant_message(content: Any, where: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise _fail(f"{where}.content must be a string or a list of content blocks.", f"{where}.content")
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        at = f"{where}.content[{i}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thinking.append(block["thinking"])
        elif kind == "redacted_thinking" or kind in SERVER_TOOL_BLOCKS:
            # redacted thinking is encrypted for Claude only; a server tool's call and results (web
            # search, fetch, code execution) ran inside Anthropic, and the text after them says what they found
            continue
        elif kind == "tool_use":
            name, call_id, args = block.get("name"), block.get("id"), block.get("input", {})
            if not isinstance(name, str) or not isinstance(call_id, str) or not isinstance(args, dict):
                raise _fail(f"{at}: a tool_use block needs 'id', 'name' and an object 'input'.", at)
            calls.append({"id": call_id, "type": "function",
                          "function": {"name": name, "arguments": orjson.dumps(args).decode()}})
        else:
            raise _fail(f"{at}: content block type {kind!r} is not supported in an assistant turn "
                        "(text, thinking, redacted_thinking, tool_use, server tool blocks).", f"{at}.type")
    # No text: None beside tool calls (OpenAI's own shape), else "" (an assistant turn needs one or the other).
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else (None if calls else "")}
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    if calls:
        message["tool_calls"] = calls
    return message


# Assistant content blocks of server tools (Messages API reference, content block types): Claude's
# own record of what ran on Anthropic's side, replayed by clients in later turns.
SERVER_TOOL_BLOCKS = frozenset({
    "server_tool_use", "web_search_tool_result", "web_fetch_tool_result", "code_execution_tool_result",
    "bash_code_execution_tool_result", "text_editor_code_execution_tool_result", "tool_search_tool_result",
    "mcp_tool_use", "mcp_tool_result", "container_upload"})


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _fail("tools must be a list.", "tools")
    out = []
    for i, tool in enumerate(tools):
        kind = tool.get("type", "custom") if isinstance(tool, dict) else None
        if kind != "custom" and is_anthropic_tool(kind):  # the client's own tools (most) skip the check
            # web_search_…, bash_…, mcp_toolset (no name) …: kept as sent, so that routing sees them
            # (RequestFacts.anthropic_tools) and only Claude routes, which get the client's body, are eligible.
            out.append(tool)
            continue
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise _fail(f"tools[{i}] needs a 'name'.", f"tools[{i}].name")
        if kind not in ("custom", None) or "input_schema" not in tool:
            raise _fail(f"tools[{i}] ({tool['name']!r}, type {kind!r}): a tool needs an 'input_schema', or the "
                        "type of a tool Anthropic defines (e.g. web_search_20250305).", f"tools[{i}]")
        schema = tool["input_schema"]
        if not isinstance(schema, dict):
            raise _fail(f"tools[{i}].input_schema must be a JSON Schema object.", f"tools[{i}].input_schema")
        function: dict[str, Any] = {"name": tool["name"], "parameters": schema}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _mcp_toolsets(servers: Any) -> list[dict[str, Any]]:
    """``mcp_servers`` (the MCP connector, mcp-client betas): tools Anthropic fetches and calls. For
    routing they are what the newer beta spells as ``mcp_toolset`` tools: only Claude routes serve them."""
    if not isinstance(servers, list):
        raise _fail("mcp_servers must be a list.", "mcp_servers")
    return [{"type": MCP_TOOLSET, "mcp_server_name": str(server.get("name") if isinstance(server, dict) else i)}
            for i, server in enumerate(servers)]


def _tool_choice(choice: Any, chat: dict[str, Any]) -> None:
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise _fail("tool_choice must be {'type': 'auto' | 'any' | 'tool' | 'none'}.", "tool_choice")
    kind = choice["type"]
    if "tools" not in chat:
        # Chat Completions refuses a tool_choice without tools; auto and none mean nothing then.
        if kind in ("any", "tool"):
            raise _fail(f"tool_choice of type {kind!r} needs tools.", "tool_choice")
        return
    if kind == "tool":
        if not isinstance(choice.get("name"), str):
            raise _fail("tool_choice of type 'tool' needs a 'name'.", "tool_choice.name")
        chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        chat["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    if choice.get("disable_parallel_tool_use"):
        chat["parallel_tool_calls"] = False


def _positive_int(body: dict[str, Any], key: str, *, required: bool) -> int | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _fail(f"{key}: a positive integer is required; got {value!r}.", key)
    return value


def _number(body: dict[str, Any], key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise _fail(f"{key} must be a number between {low:g} and {high:g}; got {value!r}.", key)
    return value


def _thinking(body: dict[str, Any], max_tokens: int) -> str | None:
    """What ``thinking`` asks for: "on", "off", or None (absent, or adaptive: the model decides)."""
    thinking = body.get("thinking")
    if thinking is None:
        return None
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        # The published limits: at least 1024, and below max_tokens.
        if not isinstance(budget, int) or isinstance(budget, bool) or not 1024 <= budget < max_tokens:
            raise _fail(f"thinking.budget_tokens must be an integer ≥ 1024 and below max_tokens ({max_tokens}); "
                        f"got {budget!r}.", "thinking.budget_tokens")
        return "on"
    if kind == "between_tools":
        return "on"
    if kind == "disabled":
        return "off"
    if kind == "adaptive":
        return None
    raise _fail("thinking.type must be 'enabled', 'disabled', 'adaptive' or 'between_tools'.", "thinking.type")


def _output_config(body: dict[str, Any], chat: dict[str, Any]) -> None:
    config = body.get("output_config")
    if config is None:
        # The structured-outputs beta's spelling of the same thing (``output_format`` with the
        # structured-outputs-2025-11-13 beta): a schema the answer must follow, so never dropped.
        config = {"format": body["output_format"]} if body.get("output_format") is not None else None
        where = "output_format"
    else:
        where = "output_config.format"
    if config is None:
        return
    if not isinstance(config, dict):
        raise _fail("output_config must be an object.", "output_config")
    effort = config.get("effort")
    if effort is not None and effort not in ("low", "medium", "high", "xhigh", "max"):
        raise _fail("output_config.effort must be low, medium, high, xhigh or max.", "output_config.effort")
    fmt = config.get("format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
            raise _fail(f"{where} must be {{'type': 'json_schema', 'schema': {{...}}}}.", where)
        # Structured outputs (https://platform.claude.com/docs/en/build-with-claude/structured-outputs)
        # as Chat Completions' response_format; the name is required there and free here.
        chat["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "output", "schema": fmt["schema"], "strict": True}}


def _check_envelope(body: Any) -> tuple[dict[str, Any], int]:
    if not isinstance(body, dict):
        raise _fail("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _fail("model: a model name is required (e.g. 'auto').", "model")
    max_tokens = _positive_int(body, "max_tokens", required=True)
    assert max_tokens is not None
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _fail("messages: a non-empty list of messages is required.", "messages")
    return body, max_tokens


def mode_hint(body: dict[str, Any]) -> str | None:
    """The mode ``thinking`` asks for, for the pipeline to use when the client named none itself.

    Thinking on (``enabled``, ``between_tools``) → ``agent`` when the request carries tools (the
    router's thinking-with-tools mode), else ``thinking``; ``disabled`` → ``instant``; absent or
    ``adaptive`` → None (the router decides).
    """
    body, max_tokens = _check_envelope(body)
    wanted = _thinking(body, max_tokens)
    if wanted == "on":
        return "agent" if body.get("tools") else "thinking"
    return "instant" if wanted == "off" else None


def omit_thinking(body: dict[str, Any]) -> bool:
    """``thinking.display == "omitted"``: the client wants thinking blocks without their text."""
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("display") == "omitted"


def to_chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages request as a Chat Completions body (raises ``MessagesRequestInvalid``).

    The thinking preference is not put in the body (Chat Completions has no such field); read it
    with ``mode_hint``. ``top_k`` is dropped: Chat Completions has no equivalent and OpenAI rejects
    unknown fields.
    """
    body, max_tokens = _check_envelope(body)
    _thinking(body, max_tokens)  # validated here too, so a bad value fails whichever is called first
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system is not None:
        text = _text_of(system, "system")
        if text:
            messages.append({"role": "system", "content": text})
    for i, message in enumerate(body["messages"]):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise _fail(f"{where}.role must be 'user' or 'assistant'.", f"{where}.role")
        if "content" not in message:
            raise _fail(f"{where}.content is required.", f"{where}.content")
        if message["role"] == "user":
            messages.extend(_user_messages(message["content"], where))
        else:
            messages.append(_assistant_message(message["content"], where))
    chat: dict[str, Any] = {"model": body["model"], "messages": messages, "max_tokens": max_tokens}
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    if body.get("mcp_servers"):
        chat["tools"] = [*chat.get("tools", ()), *_mcp_toolsets(body["mcp_servers"])]
    if body.get("tool_choice") is not None:
        _tool_choice(body["tool_choice"], chat)
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _fail("stop_sequences must be a list of strings.", "stop_sequences")
        if stops:
            chat["stop"] = stops
    for key, high in (("temperature", 1.0), ("top_p", 1.0)):
        value = _number(body, key, 0.0, high)
        if value is not None:
            chat[key] = value
    _output_config(body, chat)
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        chat["user"] = metadata["user_id"]
    if body.get("stream"):
        chat["stream"] = True
        # message_delta carries the usage, so the chat stream must end with it.
        chat["stream_options"] = {"include_usage": True}
    if isinstance(body.get("router"), dict):
        chat["router"] = body["router"]
    return chat


# --- passthrough to Claude ------------------------------------------------------------------

# Thinking the router relayed from another model carries a signature with this prefix
# (``anthropic_rendering.thinking_signature``); Claude cannot verify it.
ROUTER_SIGNATURE_PREFIX = "model-router."
_ROUTER_ONLY_FIELDS = ("router",)


def is_router_signature(signature: Any) -> bool:
    return isinstance(signature, str) and signature.startswith(ROUTER_SIGNATURE_PREFIX)


def _is_foreign_thinking(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "thinking" and is_router_signature(block.get("signature"))


# The client's headers a Claude route must see too. ``anthropic-beta`` names the beta features
# the body uses (platform.claude.com/docs/en/api/beta-headers); Claude Code sends it on every request
# (claude-code-20250219, interleaved-thinking-2025-05-14, fine-grained-tool-streaming-2025-05-14,
# context-management-2025-06-27, …) and, without it, Claude refuses the fields those betas enable.
FORWARDED_HEADERS = ("anthropic-beta",)


def claude_passthrough(body: dict[str, Any], headers: Mapping[str, str], *, model: str) -> NativeRequest:
    """``claude_passthrough_body`` with the client's headers a Claude route needs (``FORWARDED_HEADERS``)."""
    forwarded = {name: headers[name] for name in FORWARDED_HEADERS if headers.get(name)}
    return NativeRequest(claude_passthrough_body(body, model=model), forwarded)


def claude_passthrough_body(body: dict[str, Any], *, model: str) -> dict[str, Any]:
    """The client's Messages request, as is, for a route to Claude (no round trip through chat).

    Only what is the router's comes out: the ``router`` object, and thinking blocks that another
    model produced (Claude rejects a signature it did not make). ``model`` becomes the backend's.
    Validate with ``to_chat_request`` first: routing reads the chat shape anyway.
    """
    out = {k: v for k, v in body.items() if k not in _ROUTER_ONLY_FIELDS}
    out["model"] = model
    messages = []
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if message.get("role") == "assistant" and isinstance(content, list) \
                and any(_is_foreign_thinking(b) for b in content):
            message = {**message, "content": [b for b in content if not _is_foreign_thinking(b)]}
        messages.append(message)
    out["messages"] = messages
    return out


def count_tokens(body: dict[str, Any]) -> dict[str, int]:
    """``POST /v1/messages/count_tokens``: the router's own estimate, the one routing prices with."""
    if not isinstance(body, dict):
        raise _fail("The request body must be a JSON object.")
    # count_tokens takes no max_tokens; a large one keeps the thinking-budget check meaningful.
    chat = to_chat_request({**body, "max_tokens": 1 << 30})
    return {"input_tokens": extract_facts(chat).input_tokens}
