"""The Responses API's tool kinds on chat routes: what OpenAI Codex CLI and other Responses clients offer.

Sources: OpenAI's Responses API reference (platform.openai.com/docs/api-reference/responses/create:
tools ``function``, ``custom`` with a ``text`` or ``grammar`` format, ``local_shell``, hosted
``web_search``; output items ``function_call``, ``custom_tool_call`` with a string ``input``,
``local_shell_call`` with an ``exec`` action) and Codex's request builder (openai/codex,
codex-rs/core/src/client_common.rs ``ToolSpec``: function, local_shell, web_search, and the freeform
``custom`` apply_patch tool with a lark grammar). Chat Completions (platform.openai.com/docs/
api-reference/chat/create) carries function tools only on every backend the router has, so:
- a ``custom`` tool becomes a function with one string argument, ``input``; its grammar goes in the
  description (no chat route enforces one); the call comes back as a ``custom_tool_call``;
- ``local_shell`` becomes a function taking the ``exec`` action's fields; the call comes back as a
  ``local_shell_call``;
- hosted ``web_search`` runs inside OpenAI and no route here can run it: it is an offer the model
  may ignore, so it is left out (Codex sends it when search is enabled) rather than refusing the turn;
- the other hosted tools (file_search, code_interpreter, image_generation, computer use, remote
  MCP) would change what the request means without their runtime: 400.
"""

from __future__ import annotations

from typing import Any

import orjson

from router.errors import InvalidRequest

CUSTOM = "custom"
LOCAL_SHELL = "local_shell"
CUSTOM_INPUT = "input"  # the one string argument a custom tool takes on a chat route
_LEFT_OUT = frozenset({"web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11"})
_LOCAL_SHELL_FUNCTION = {
    "name": LOCAL_SHELL,
    "description": "Runs a command on the user's machine and returns its output.",
    "parameters": {"type": "object", "properties": {
        "command": {"type": "array", "items": {"type": "string"}, "description": "The command and its arguments."},
        "workdir": {"type": "string", "description": "The working directory."},
        "timeout_ms": {"type": "integer", "description": "How long the command may run."}},
        "required": ["command"]},
}


def _fail(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def _custom_function(tool: dict[str, Any], where: str) -> dict[str, Any]:
    given = tool.get("description")
    description = given if isinstance(given, str) else ""
    fmt = tool.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "grammar":
        if not isinstance(fmt.get("definition"), str):
            raise _fail(f"{where}.format: a grammar format needs a 'definition'.", f"{where}.format")
        description += (f"\n\nThe `{CUSTOM_INPUT}` argument is raw text (not JSON) in this "
                        f"{fmt.get('syntax') or 'grammar'} grammar:\n{fmt['definition']}")
    return {"name": tool["name"], "description": description.strip(), "parameters": {
        "type": "object", "properties": {CUSTOM_INPUT: {"type": "string", "description": "The tool's input."}},
        "required": [CUSTOM_INPUT], "additionalProperties": False}}


def chat_tools(tools: Any) -> list[dict[str, Any]]:
    """A Responses request's ``tools`` as Chat Completions function tools (raises ``InvalidRequest``)."""
    if not isinstance(tools, list):
        raise _fail("tools must be a list.", "tools")
    out = []
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind in _LEFT_OUT:
            continue
        if kind == LOCAL_SHELL:
            out.append({"type": "function", "function": _LOCAL_SHELL_FUNCTION})
            continue
        if kind not in ("function", CUSTOM) or not isinstance(tool.get("name"), str):
            raise _fail(f"tools[{i}]: only function, custom, local_shell and web_search tools can be routed; "
                        f"got type {kind!r} (hosted tools run inside OpenAI).", f"tools[{i}]")
        if kind == CUSTOM:
            function = _custom_function(tool, f"tools[{i}]")
        else:
            function = {"name": tool["name"]}
            for key in ("description", "parameters", "strict"):
                if tool.get(key) is not None:
                    function[key] = tool[key]
        out.append({"type": "function", "function": function})
    return out


def kinds(request: dict[str, Any]) -> dict[str, str]:
    """Tool name → kind, for the tools whose calls are not ``function_call`` items (custom, local_shell)."""
    out: dict[str, str] = {}
    for tool in request.get("tools") or ():
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == LOCAL_SHELL:
            out[LOCAL_SHELL] = LOCAL_SHELL
        elif kind == CUSTOM and isinstance(tool.get("name"), str):
            out[tool["name"]] = CUSTOM
    return out


def _arguments(raw: str) -> Any:
    try:
        return orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        return None


def custom_input(arguments: str) -> str:
    """The ``input`` string of a custom tool's call; a model that wrote raw text instead of the JSON
    object gets its text passed on as the input."""
    parsed = _arguments(arguments)
    if isinstance(parsed, dict) and isinstance(parsed.get(CUSTOM_INPUT), str):
        return str(parsed[CUSTOM_INPUT])
    return arguments


def shell_action(arguments: str) -> dict[str, Any]:
    """The ``exec`` action of a local_shell call from its chat arguments."""
    parsed = _arguments(arguments)
    parsed = parsed if isinstance(parsed, dict) else {}
    command = parsed.get("command")
    if isinstance(command, str):
        command = ["bash", "-lc", command]  # one string: a shell line, as Codex itself runs them
    elif not (isinstance(command, list) and all(isinstance(c, str) for c in command)):
        command = ["bash", "-lc", arguments]
    action: dict[str, Any] = {"type": "exec", "command": command, "env": {}}
    if isinstance(parsed.get("workdir"), str):
        action["working_directory"] = parsed["workdir"]
    if isinstance(parsed.get("timeout_ms"), int):
        action["timeout_ms"] = parsed["timeout_ms"]
    return action


def call_item(kind: str, item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    """The output item for a chat tool call to a tool of ``kind`` (``kinds``; else a function)."""
    if kind == CUSTOM:
        return {"id": item_id, "type": "custom_tool_call", "call_id": call_id, "name": name,
                "input": custom_input(arguments)}
    if kind == LOCAL_SHELL:
        return {"id": item_id, "type": "local_shell_call", "call_id": call_id, "status": status,
                "action": shell_action(arguments)}
    return {"id": item_id, "type": "function_call", "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}


def chat_call(item: dict[str, Any], where: str) -> dict[str, Any]:
    """A ``custom_tool_call`` or ``local_shell_call`` input item as a chat tool call."""
    call_id = item.get("call_id") or item.get("id")
    if not isinstance(call_id, str):
        raise _fail(f"{where}.call_id is required.", f"{where}.call_id")
    if item["type"] == "custom_tool_call":
        name, value = item.get("name"), item.get(CUSTOM_INPUT)
        if not isinstance(name, str) or not isinstance(value, str):
            raise _fail(f"{where}: a custom_tool_call item needs 'name' and a string 'input'.", where)
        arguments = orjson.dumps({CUSTOM_INPUT: value}).decode()
    else:
        action = item.get("action")
        if not isinstance(action, dict) or not isinstance(action.get("command"), list):
            raise _fail(f"{where}.action: a local_shell_call needs an exec action with a 'command' list.",
                        f"{where}.action")
        name = LOCAL_SHELL
        fields = {"command": action["command"], "workdir": action.get("working_directory"),
                  "timeout_ms": action.get("timeout_ms")}
        arguments = orjson.dumps({k: v for k, v in fields.items() if v is not None}).decode()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
