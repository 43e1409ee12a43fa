"""OpenAI's Responses API → the chat shape: requests, the conversation kept for ``previous_response_id``.

Reference (OpenAI's published API): https://platform.openai.com/docs/api-reference/responses/create
— ``input`` is a string or a list of items (messages with ``input_text``/``input_image``/``input_file``
parts, earlier ``output_text`` messages, ``function_call``, ``function_call_output``, ``reasoning``);
``instructions`` are not carried over from a previous response ("when used along with
previous_response_id, the instructions from a previous response will not be carried over").

Errors are OpenAI's own shape (``router.errors``). Answers and stream events are rendered by
``responses_rendering``.
"""

from __future__ import annotations

from typing import Any

import orjson

from router.doors import responses_tools
from router.errors import InvalidRequest, RouterError


class ResponseNotFound(RouterError):
    """``GET``/``DELETE`` of an unknown, expired or unstored response, or a bad ``previous_response_id``."""

    status = 404
    type = "invalid_request_error"


def render_error(exc: RouterError) -> tuple[int, bytes, dict[str, str]]:
    """(status, body, headers): the Responses API uses OpenAI's error shape, like chat completions."""
    return exc.status, exc.body_bytes(), dict(exc.headers)


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None) -> bytes:
    kind = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
            404: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error"}.get(
        status, "invalid_request_error" if 400 <= status < 500 else "server_error")
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


def _fail(message: str, param: str | None = None) -> InvalidRequest:
    return InvalidRequest(message, param=param)


# --- input items → chat messages ---------------------------------------------------------------

_MESSAGE_ROLES = ("user", "assistant", "system", "developer")


def _part(part: Any, where: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "refusal" and isinstance(part.get("refusal"), str):
        return {"type": "text", "text": part["refusal"]}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise _fail(f"{where}: only input_image parts with an 'image_url' (https or data URL) can be routed; "
                        "file_id needs OpenAI's file store.", f"{where}.image_url")
        image: dict[str, Any] = {"url": url}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        if not isinstance(part.get("file_data"), str):
            raise _fail(f"{where}: only input_file parts with 'file_data' can be routed.", f"{where}.file_data")
        file: dict[str, Any] = {"file_data": part["file_data"]}
        if isinstance(part.get("filename"), str):
            file["filename"] = part["filename"]
        return {"type": "file", "file": file}
    raise _fail(f"{where}: content part type {kind!r} is not supported (input_text, input_image, input_file, "
                "output_text, refusal).", f"{where}.type")


def _content(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _fail(f"{where}.content must be a string or a list of content parts.", f"{where}.content")
    parts = [_part(p, f"{where}.content[{i}]") for i, p in enumerate(content)]
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)  # plain text reads the same to every backend
    return parts


def _reasoning_text(item: dict[str, Any]) -> str:
    """Full reasoning (``content``) when the item has it, else its summary."""
    for key, kind in (("content", "reasoning_text"), ("summary", "summary_text")):
        texts = [p.get("text", "") for p in item.get(key) or () if isinstance(p, dict) and p.get("type") == kind]
        if texts:
            return "\n".join(texts)
    return ""


_CALLS = frozenset({"custom_tool_call", "local_shell_call"})
_OUTPUTS = frozenset({"function_call_output", "custom_tool_call_output", "local_shell_call_output"})
_NOT_REPLAYED = frozenset({"web_search_call"})


class _Conversation:
    """Builds chat messages; consecutive assistant output (text, reasoning, calls) merges into one turn."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._reasoning: list[str] = []

    def _assistant(self) -> dict[str, Any]:
        last = self.messages[-1] if self.messages else None
        if last is None or last["role"] != "assistant":
            last = {"role": "assistant", "content": None}
            self.messages.append(last)
        if self._reasoning:
            last["reasoning_content"] = (last.get("reasoning_content") or "") + "".join(self._reasoning)
            self._reasoning.clear()
        return last

    def add(self, item: Any, where: str) -> None:
        if not isinstance(item, dict):
            raise _fail(f"{where} must be an object.", where)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in _MESSAGE_ROLES:
                raise _fail(f"{where}.role must be one of {', '.join(_MESSAGE_ROLES)}.", f"{where}.role")
            if "content" not in item:
                raise _fail(f"{where}.content is required.", f"{where}.content")
            content = _content(item["content"], where)
            if role == "assistant":
                turn = self._assistant()
                text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
                turn["content"] = (turn["content"] or "") + text
            else:
                self.messages.append({"role": "system" if role == "developer" else role, "content": content})
        elif kind == "function_call":
            call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments", "")
            if not isinstance(call_id, str) or not isinstance(name, str) or not isinstance(arguments, str):
                raise _fail(f"{where}: a function_call item needs 'call_id', 'name' and string 'arguments'.", where)
            turn = self._assistant()
            turn.setdefault("tool_calls", []).append(
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
        elif kind in _OUTPUTS:
            # a local_shell_call_output names its call by ``id`` (the Responses reference)
            call_id = item.get("id") if kind == "local_shell_call_output" else item.get("call_id")
            output = item.get("output")
            if not isinstance(call_id, str):
                raise _fail(f"{where}.call_id is required.", f"{where}.call_id")
            if isinstance(output, list):
                parts = [_part(p, f"{where}.output[{i}]") for i, p in enumerate(output)]
                output = "".join(p["text"] for p in parts if p["type"] == "text")
            if not isinstance(output, str):
                raise _fail(f"{where}.output must be a string or a list of content parts.", f"{where}.output")
            self.messages.append({"role": "tool", "tool_call_id": call_id, "content": output})
        elif kind in _CALLS:  # Codex's apply_patch (custom) and local shell calls, as chat tool calls
            self._assistant().setdefault("tool_calls", []).append(responses_tools.chat_call(item, where))
        elif kind in _NOT_REPLAYED:
            return  # a hosted search ran inside OpenAI; the assistant's text after it says what it found
        elif kind == "reasoning":
            # Kept for the next assistant turn: Kimi wants its reasoning back across tool calls.
            text = _reasoning_text(item)
            if text:
                self._reasoning.append(text)
        else:
            raise _fail(f"{where}: input item type {kind!r} cannot be routed (message, function_call, "
                        "function_call_output, custom_tool_call(_output), local_shell_call(_output), reasoning).",
                        f"{where}.type")

    def result(self) -> list[dict[str, Any]]:
        return self.messages


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's ``input`` as a list of items (a string is one user message)."""
    value = body.get("input")
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list):
        raise _fail("input must be a string or a list of input items.", "input")
    return value


# --- request ---------------------------------------------------------------------------------


def _tool_choice(choice: Any) -> str | dict[str, Any]:
    if choice in ("auto", "none", "required"):
        return str(choice)
    if isinstance(choice, dict) and choice.get("type") in ("function", responses_tools.CUSTOM) \
            and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}  # a custom tool is a function there
    raise _fail("tool_choice must be 'auto', 'none', 'required' or {'type': 'function' | 'custom', 'name': ...}.",
                "tool_choice")


def _response_format(text: Any) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        if not isinstance(fmt.get("name"), str) or not isinstance(fmt.get("schema"), dict):
            raise _fail("text.format of type json_schema needs 'name' and 'schema'.", "text.format")
        schema = {k: fmt[k] for k in ("name", "schema", "description", "strict") if fmt.get(k) is not None}
        return {"type": "json_schema", "json_schema": schema}
    raise _fail("text.format.type must be 'text', 'json_object' or 'json_schema'.", "text.format.type")


def _number(body: dict[str, Any], key: str, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= high:
        raise _fail(f"{key} must be a number between 0 and {high:g}; got {value!r}.", key)
    return value


def _check_envelope(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _fail("The request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise _fail("model: a model name is required (e.g. 'auto').", "model")
    metadata = body.get("metadata")
    if metadata is not None and not (isinstance(metadata, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise _fail("metadata must be an object of string values.", "metadata")
    if body.get("conversation") is not None:
        raise _fail("conversation objects are not supported by this gateway; chain turns with "
                    "previous_response_id.", "conversation")
    if body.get("background"):
        raise _fail("background responses are not supported by this gateway; omit 'background'.", "background")
    return body


def mode_hint(body: dict[str, Any]) -> str | None:
    """The mode ``reasoning.effort`` asks for, for the pipeline to use when the client named none.

    ``none``/``minimal`` → ``instant``; ``low`` and up → ``thinking`` (``agent`` when the request
    carries tools: the router's thinking-with-tools mode); absent → None.
    """
    reasoning = _check_envelope(body).get("reasoning")
    if reasoning is None:
        return None
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else "?"
    if effort is None:
        return None
    if effort in ("none", "minimal"):
        return "instant"
    if effort in ("low", "medium", "high", "xhigh", "max"):
        return "agent" if body.get("tools") else "thinking"
    raise _fail("reasoning.effort must be none, minimal, low, medium, high, xhigh or max.", "reasoning.effort")


def to_chat_request(body: dict[str, Any], previous: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A Responses request as a Chat Completions body; ``previous`` is the stored conversation of
    ``previous_response_id`` (``conversation_items`` of that response), which the caller looks up.

    ``reasoning.effort`` is not put in the body; read it with ``mode_hint``. ``store``,
    ``metadata`` and ``previous_response_id`` stay with the gateway.
    """
    body = _check_envelope(body)
    mode_hint(body)  # validated here too
    items = input_items(body)
    if not items and not previous:
        raise _fail("input: a string or a non-empty list of input items is required.", "input")
    conversation = _Conversation()
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise _fail("instructions must be a string.", "instructions")
    if instructions:
        conversation.messages.append({"role": "system", "content": instructions})
    for i, item in enumerate(previous or ()):
        conversation.add(item, f"previous_response_id item {i}")
    for i, item in enumerate(items):
        conversation.add(item, f"input[{i}]")
    chat: dict[str, Any] = {"model": body["model"], "messages": conversation.result()}
    tools = responses_tools.chat_tools(body["tools"]) if body.get("tools") else None
    if tools:  # none left: only hosted web search was offered (responses_tools)
        chat["tools"] = tools
        if body.get("parallel_tool_calls") is False:
            chat["parallel_tool_calls"] = False
    if body.get("tool_choice") is not None:
        choice = _tool_choice(body["tool_choice"])
        if "tools" in chat:
            chat["tool_choice"] = choice
        elif choice not in ("auto", "none"):  # Chat Completions refuses a tool_choice without tools
            raise _fail("tool_choice 'required' or a named function needs tools.", "tool_choice")
    limit = body.get("max_output_tokens")
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise _fail(f"max_output_tokens must be a positive integer; got {limit!r}.", "max_output_tokens")
        chat["max_tokens"] = limit  # every OpenAI-compatible server takes it; dispatch renames it for OpenAI
    for key, high in (("temperature", 2.0), ("top_p", 1.0)):
        value = _number(body, key, high)
        if value is not None:
            chat[key] = value
    response_format = _response_format(body.get("text"))
    if response_format is not None:
        chat["response_format"] = response_format
    user = body.get("safety_identifier") or body.get("user")
    if isinstance(user, str):
        chat["user"] = user
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}  # response.completed carries the usage
    if isinstance(body.get("router"), dict):
        chat["router"] = body["router"]
    return chat


def conversation_items(previous: list[dict[str, Any]] | None, body: dict[str, Any],
                       response: dict[str, Any]) -> list[dict[str, Any]]:
    """What to store for a later ``previous_response_id``: earlier items, this input, this output.

    Instructions are left out on purpose (the API does not carry them over).
    """
    return [*(previous or ()), *input_items(body), *response.get("output", ())]


def should_store(body: dict[str, Any]) -> bool:
    """``store`` defaults to true in the Responses API; ``store: false`` keeps nothing."""
    return body.get("store") is not False
