"""OpenAI Codex CLI through ``/v1/responses``: its request shape, through the real gateway, to the demo
Kimi and GPT (chat routes), and what comes back.

The shape is Codex's own request builder (openai/codex, codex-rs/core/src/client_common.rs: the
``ResponsesApiRequest`` fields model, instructions, input, tools, tool_choice "auto",
parallel_tool_calls, reasoning, store false, stream true, include ["reasoning.encrypted_content"],
prompt_cache_key, text.verbosity; ``ToolSpec`` function / local_shell / web_search / custom, the
freeform apply_patch tool with a lark grammar ``format``) and the headers it sends (``originator:
codex_cli_rs``, ``session_id``, ``accept: text/event-stream``, a bearer key). The upstream receives
Chat Completions as OpenAI publishes it (platform.openai.com/docs/api-reference/chat/create:
function tools only); the client gets Responses items and events the openai SDK's types accept.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Gateway
from tests.support import door_conformance

GRAMMAR = 'start: begin_patch hunk+ end_patch\nbegin_patch: "*** Begin Patch" LF\nend_patch: "*** End Patch" LF?\n'
APPLY_PATCH = {"type": "custom", "name": "apply_patch",
               "description": "Use the `apply_patch` tool to edit files.",
               "format": {"type": "grammar", "syntax": "lark", "definition": GRAMMAR}}
SHELL = {"type": "function", "name": "shell", "description": "Runs a shell command and returns its output.",
         "strict": False, "parameters": {"type": "object", "properties": {
             "command": {"type": "array", "items": {"type": "string"}}, "workdir": {"type": "string"},
             "timeout_ms": {"type": "number"}}, "required": ["command"], "additionalProperties": False}}
HEADERS = {"authorization": "Bearer test-key", "originator": "codex_cli_rs", "version": "0.46.0",
           "session_id": "0199a7e2-5b1c-7c3e-9d1e-2f0c4e5b6a7d", "accept": "text/event-stream",
           "user-agent": "codex_cli_rs/0.46.0 (Ubuntu 24.4.0; x86_64) xterm-256color"}


def codex(model: str, tools: list[dict[str, Any]], *, stream: bool = True,
          history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "model": model,
        "instructions": "You are Codex, based on GPT-5. You are running as a coding agent in the Codex CLI.",
        "input": [
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "<environment_context>\n  <cwd>/repo</cwd>\n</environment_context>"}]},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "Fix the typo in README.md"}]},
            *(history or ()),
        ],
        "tools": tools, "tool_choice": "auto", "parallel_tool_calls": False,
        "reasoning": {"effort": "medium", "summary": "auto"}, "store": False, "stream": stream,
        "include": ["reasoning.encrypted_content"], "prompt_cache_key": HEADERS["session_id"],
        "text": {"verbosity": "low"},
    }


def post(gw: Gateway, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/responses", json=body, headers=HEADERS, timeout=30)


def items(response: httpx.Response, stream: bool) -> list[dict[str, Any]]:
    """The response's output items; for a stream, after checking every event against the SDK's types."""
    assert response.status_code == 200, response.text
    if not stream:
        body = response.json()
        door_conformance.assert_strict(door_conformance.RESPONSE.validate_python(body), body)
        return list(body["output"])
    events = door_conformance.responses_stream(response.content)
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert events[-1]["response"]["output"] == done
    return done


def upstream_request(gw: Gateway, backend: str) -> dict[str, Any]:
    return dict(gw.demo.stats(backend)["last_requests"][-1]["body"])


@pytest.mark.parametrize("stream", [True, False], ids=["sse", "json"])
@pytest.mark.parametrize(("route", "backend"), [("kimi:agent", "kimi"), ("gpt:default", "gpt")])
def test_apply_patch_is_a_one_string_function_upstream_and_a_custom_tool_call_back(
        gateway: Gateway, route: str, backend: str, stream: bool) -> None:
    response = post(gateway, codex(route, [APPLY_PATCH, SHELL, {"type": "local_shell"}, {"type": "web_search"}],
                                   stream=stream))
    sent = upstream_request(gateway, backend)
    names = [t["function"]["name"] for t in sent["tools"]]
    assert names == ["apply_patch", "shell", "local_shell"]  # hosted web search left out
    assert all(t["type"] == "function" for t in sent["tools"])  # what every chat route accepts
    patch = sent["tools"][0]["function"]
    assert patch["parameters"]["properties"] == {"input": {"type": "string", "description": "The tool's input."}}
    assert GRAMMAR.strip() in patch["description"] and "lark" in patch["description"]
    assert sent["messages"][0]["role"] in ("system", "developer")  # the instructions
    for field in ("store", "include", "prompt_cache_key", "text", "reasoning", "input", "instructions"):
        assert field not in sent  # Responses-only: not Chat Completions fields
    output = items(response, stream)
    call = next(i for i in output if i["type"] != "reasoning")
    assert call["type"] == "custom_tool_call" and call["name"] == "apply_patch"
    assert isinstance(call["input"], str) and call["input"] and not call["input"].startswith("{")  # raw text


def test_a_local_shell_call_comes_back_with_its_exec_action(gateway: Gateway) -> None:
    output = items(post(gateway, codex("kimi:agent", [{"type": "local_shell"}, SHELL])), True)
    call = next(i for i in output if i["type"] != "reasoning")
    assert call["type"] == "local_shell_call" and call["status"] == "completed"
    assert call["action"]["type"] == "exec" and all(isinstance(c, str) for c in call["action"]["command"])


def test_codex_without_a_store_resends_the_turn_and_the_calls_replay_as_chat_tool_calls(gateway: Gateway) -> None:
    """``store: false``: Codex sends the whole history, its apply_patch call, a shell call and their
    outputs included (and a search it ran); the upstream gets them as chat tool calls and results."""
    patch = "*** Begin Patch\n*** Update File: README.md\n-teh\n+the\n*** End Patch\n"
    history = [
        {"type": "reasoning", "id": "rs_1", "summary": [], "content": None, "encrypted_content": "gAAAAABo"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed",
         "action": {"type": "search", "query": "readme typo"}},
        {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_patch", "name": "apply_patch", "input": patch},
        {"type": "custom_tool_call_output", "call_id": "call_patch", "output": "Success. Updated README.md"},
        {"type": "local_shell_call", "id": "lsh_1", "call_id": "call_sh", "status": "completed",
         "action": {"type": "exec", "command": ["git", "diff"], "env": {}, "working_directory": "/repo"}},
        {"type": "local_shell_call_output", "id": "call_sh", "output": "-teh\n+the"},
    ]
    response = post(gateway, codex("kimi:agent", [APPLY_PATCH, {"type": "local_shell"}], history=history))
    output = items(response, True)
    assert any(i["type"] == "message" for i in output)  # the demo answers the tool results
    sent = upstream_request(gateway, "kimi")["messages"]
    calls = {c["id"]: c["function"] for m in sent if m["role"] == "assistant" for c in m.get("tool_calls") or ()}
    assert orjson.loads(calls["call_patch"]["arguments"]) == {"input": patch}
    assert calls["call_patch"]["name"] == "apply_patch"
    assert orjson.loads(calls["call_sh"]["arguments"]) == {"command": ["git", "diff"], "workdir": "/repo"}
    results = {m["tool_call_id"]: m["content"] for m in sent if m["role"] == "tool"}
    assert results == {"call_patch": "Success. Updated README.md", "call_sh": "-teh\n+the"}


def test_the_openai_sdk_reads_the_custom_tool_call(gateway: Gateway) -> None:
    from openai.types.responses import ResponseCustomToolCall

    client = gateway.client()
    answer = client.responses.create(model="auto", input="Fix the typo in README.md", tools=[APPLY_PATCH],  # type: ignore[list-item]
                                     reasoning={"effort": "low", "summary": "auto"}, store=False)
    calls = [i for i in answer.output if isinstance(i, ResponseCustomToolCall)]
    assert len(calls) == 1 and calls[0].name == "apply_patch"
    assert answer.model_extra is not None and answer.model_extra["router"]["mode"] in ("agent", "default")


def test_other_hosted_tools_are_refused_in_openais_shape(gateway: Gateway) -> None:
    response = post(gateway, codex("auto", [SHELL, {"type": "file_search", "vector_store_ids": ["vs_1"]}]))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "tools[1]" and "file_search" in error["message"]
