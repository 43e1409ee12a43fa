"""Claude Code through ``/v1/messages``: its headers and bodies, through the real gateway, to a
recording Claude (tests/support/capture.py) and to the demo upstreams.

The request shape is Claude Code's as public captures of it show (``POST /v1/messages?beta=true``
with ``anthropic-beta: claude-code-20250219,interleaved-thinking-2025-05-14,
fine-grained-tool-streaming-2025-05-14``, ``anthropic-dangerous-direct-browser-access``, ``x-app:
cli``, a ``claude-cli/… (external, cli)`` user agent; system blocks with ``cache_control``, tools
with an ``input_schema``, the ``web_search_20250305`` server tool for its WebSearch,
``metadata.user_id``, ``thinking``, ``stream: true``). What Claude accepts is Anthropic's published
reference: platform.claude.com/docs/en/api/messages and /api/beta-headers (several betas, comma
separated, in one header), /agents-and-tools/tool-use/web-search-tool (the ``server_tool_use`` and
``web_search_tool_result`` blocks and their stream events).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import Gateway, default_policy, start_gateway
from tests.support import door_conformance
from tests.support.capture import CaptureUpstream

BETAS = ("claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14,"
         "context-management-2025-06-27")
HEADERS = {"x-api-key": "test-key", "anthropic-version": "2023-06-01", "anthropic-beta": BETAS,
           "anthropic-dangerous-direct-browser-access": "true", "x-app": "cli",
           "user-agent": "claude-cli/2.0.14 (external, cli)", "accept": "application/json"}
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}
BASH = {"name": "Bash", "description": "Executes a given bash command in a persistent shell session.",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"},
                                                          "timeout": {"type": "number"}},
                         "required": ["command"], "additionalProperties": False,
                         "$schema": "http://json-schema.org/draft-07/schema#"}}
CLAUDE_CODE: dict[str, Any] = {
    "max_tokens": 32000,
    "system": [{"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
                "cache_control": {"type": "ephemeral"}},
               {"type": "text", "text": "You are an interactive CLI tool that helps users with software "
                                        "engineering tasks.", "cache_control": {"type": "ephemeral"}}],
    "messages": [{"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>This is a reminder.</system-reminder>"},
        {"type": "text", "text": "What is new in the latest Python release? Search the web.",
         "cache_control": {"type": "ephemeral"}}]}],
    "tools": [BASH, WEB_SEARCH],
    "metadata": {"user_id": "user_5e1f_account__session_0b0c9a61-5b5e-4c29-a3b9-3f4e0a8f5a11"},
    "thinking": {"type": "enabled", "budget_tokens": 31999},
    "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
    "stream": True,
}
SEARCH_RESULT = {"type": "web_search_result", "url": "https://docs.python.org/3.13/whatsnew/3.13.html",
                 "title": "What's New In Python 3.13", "encrypted_content": "Eo8BCioIAhgBIiQyNzU", "page_age": None}
CITATION = {"type": "web_search_result_location", "url": SEARCH_RESULT["url"], "title": SEARCH_RESULT["title"],
            "encrypted_index": "EpMBCioIAhgB", "cited_text": "A new interactive interpreter."}
USAGE = {"input_tokens": 2100, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 95,
         "server_tool_use": {"web_search_requests": 1, "web_fetch_requests": 0}}
# Claude's answer with one web search (web-search-tool page, "Response"): the search call, its
# results, then cited text.
MESSAGE: dict[str, Any] = {
    "id": "msg_01WebSearch", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [
        {"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search", "input": {"query": "python release"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01", "content": [SEARCH_RESULT]},
        {"type": "text", "text": "A new interactive interpreter.", "citations": [CITATION]}],
    "stop_reason": "end_turn", "stop_sequence": None, "usage": USAGE,
}
EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("message_start", {"type": "message_start", "message": {
        **MESSAGE, "content": [], "stop_reason": None, "usage": {**USAGE, "output_tokens": 1}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
        "type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search", "input": {}}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
        "type": "input_json_delta", "partial_json": '{"query": "python release"}'}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": MESSAGE["content"][1]}),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    ("content_block_start", {"type": "content_block_start", "index": 2, "content_block": {
        "type": "text", "text": "", "citations": []}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 2, "delta": {
        "type": "citations_delta", "citation": CITATION}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 2, "delta": {
        "type": "text_delta", "text": "A new interactive interpreter."}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 2}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                       "usage": {"output_tokens": 95, "server_tool_use": USAGE["server_tool_use"]}}),
    ("message_stop", {"type": "message_stop"}),
]


@pytest.fixture(scope="module")
def capture() -> Iterator[CaptureUpstream]:
    upstream = CaptureUpstream().start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def gw(capture: CaptureUpstream, classifier: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = start_gateway(None, default_policy(), Path(tmp_path_factory.mktemp("claude-code")),  # type: ignore[arg-type]
                            classifier=classifier, env=capture.backend_env())
    yield gateway
    gateway.stop()


@pytest.fixture(autouse=True)
def scripted(capture: CaptureUpstream) -> Iterator[None]:
    capture.anthropic_message, capture.anthropic_events = MESSAGE, EVENTS
    yield
    capture.anthropic_message = capture.anthropic_events = None


def post(gw: Gateway, body: dict[str, Any], headers: dict[str, str] = HEADERS) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/messages?beta=true", json=body, headers=headers, timeout=30)


def test_claude_code_with_web_search_is_routed_to_claude_with_its_betas(gw: Gateway, capture: CaptureUpstream) -> None:
    """``model: auto``: the web search tool leaves Claude the only eligible route; Claude receives
    the body as Claude Code wrote it and every beta it named."""
    before = len(capture.requests)
    response = post(gw, {"model": "auto", **CLAUDE_CODE})
    assert response.status_code == 200, response.text
    assert response.headers["x-router-route"] == "claude:default"
    assert len(capture.requests) == before + 1  # one attempt, on Claude: nothing else could serve it
    got = capture.last
    assert got["path"] == "/v1/messages"
    assert got["headers"]["anthropic-beta"] == BETAS  # as the client listed them
    assert got["headers"]["x-api-key"] == "sk-a" and "test-key" not in repr(got)
    expected = copy.deepcopy(CLAUDE_CODE)
    expected["model"] = "claude-sonnet-4-5"
    sent = got["body"]
    assert sent.pop("max_tokens") <= CLAUDE_CODE["max_tokens"]  # the money cap may lower it …
    budget = sent.pop("thinking")["budget_tokens"]
    expected.pop("max_tokens"), expected.pop("thinking")
    assert budget <= 31999  # … and the thinking budget under it
    assert sent == expected  # the web search tool, context_management, cache_control: as sent
    # Claude's events came back as they came (each one of the SDK's published types) …
    frames = door_conformance.anthropic_stream(response.content)
    router = frames[-2][1].pop("router")
    assert frames == EVENTS and router["route"] == "claude:default"
    # … and the search is paid for: $10 per 1,000 searches on top of the tokens (web search tool page)
    price_in, _, price_out = gw.services.store.current.policy.backends["claude"].pricing.per_token_usd()
    tokens = USAGE["input_tokens"] * price_in + USAGE["output_tokens"] * price_out
    assert router["cost_usd"] == pytest.approx(tokens + 0.01, rel=1e-6)


def test_the_sdk_sees_the_server_tool_blocks_whole_and_streamed(gw: Gateway) -> None:
    client = anthropic.Anthropic(base_url=gw.url, api_key="test-key", max_retries=0)
    body = {k: v for k, v in CLAUDE_CODE.items() if k not in ("stream", "context_management")}
    body.update(max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 2048})  # the SDK's non-stream cap
    message = client.beta.messages.create(model="auto", betas=["claude-code-20250219"], **body)
    kinds = [block.type for block in message.content]
    assert kinds == ["server_tool_use", "web_search_tool_result", "text"]
    assert message.content[1].content[0].url == SEARCH_RESULT["url"]  # type: ignore[union-attr,index]
    price_in, _, price_out = gw.services.store.current.policy.backends["claude"].pricing.per_token_usd()
    paid = USAGE["input_tokens"] * price_in + USAGE["output_tokens"] * price_out + 0.01  # one search
    assert (message.model_extra or {})["router"]["cost_usd"] == pytest.approx(paid, rel=1e-6)
    with client.messages.stream(model="auto", **body) as stream:
        final = stream.get_final_message()
    assert final.model_dump(exclude_none=True, exclude={"usage"}) == \
        anthropic.types.Message.model_validate(MESSAGE).model_dump(exclude_none=True, exclude={"usage"})


def test_the_gateways_own_beta_is_merged_not_duplicated(gw: Gateway, capture: CaptureUpstream) -> None:
    """The chat door to Claude with a json_schema answer adds structured-outputs; the Messages door
    forwards what the client named (a beta the client also named is sent once)."""
    gw.client().chat.completions.create(
        model="claude:default", messages=[{"role": "user", "content": "A city as JSON."}], max_tokens=64,
        response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": {"type": "object"}}})
    assert capture.last["headers"]["anthropic-beta"] == "structured-outputs-2025-11-13"
    headers = {**HEADERS, "anthropic-beta": "context-1m-2025-08-07, context-1m-2025-08-07"}
    assert post(gw, {"model": "claude:default", **CLAUDE_CODE}, headers).status_code == 200
    assert capture.last["headers"]["anthropic-beta"] == "context-1m-2025-08-07"
    no_beta = {k: v for k, v in HEADERS.items() if k != "anthropic-beta"}
    assert post(gw, {"model": "claude:default", **CLAUDE_CODE}, no_beta).status_code == 200
    assert "anthropic-beta" not in capture.last["headers"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_server_tool_on_a_route_that_cannot_run_it_is_a_400_naming_it(gw: Gateway, capture: CaptureUpstream,
                                                                       stream: bool) -> None:
    before = len(capture.requests)
    response = post(gw, {"model": "kimi:agent", **CLAUDE_CODE, "stream": stream})
    assert response.status_code == 400, response.text
    error = response.json()
    door_conformance.assert_strict(door_conformance.ANTHROPIC_ERROR.validate_python(error), error)
    assert error["error"]["type"] == "invalid_request_error"
    assert "web_search (web_search_20250305, a server tool)" in error["error"]["message"]
    assert len(capture.requests) == before  # nothing was sent anywhere


def test_beta_only_fields_are_left_out_of_a_kimi_request(gw: Gateway, capture: CaptureUpstream) -> None:
    """Without the server tool any route may answer; Kimi gets the chat shape: context_management
    (context editing, a Claude-side beta) has no meaning there and is not sent, nor is any beta."""
    body = {**CLAUDE_CODE, "tools": [BASH], "stream": False}
    response = post(gw, {"model": "kimi:agent", **body})
    assert response.status_code == 200, response.text
    got = capture.last
    assert got["path"] == "/v1/chat/completions"
    assert "context_management" not in got["body"] and "anthropic-beta" not in got["headers"]
    assert [t["function"]["name"] for t in got["body"]["tools"]] == ["Bash"]
    assert got["body"]["messages"][0]["role"] == "system"


def test_a_replayed_search_turn_is_served_by_any_route(gw: Gateway, capture: CaptureUpstream) -> None:
    """The next turn replays Claude's search blocks; without the tool offered again, Kimi may answer."""
    history = [*CLAUDE_CODE["messages"], {"role": "assistant", "content": MESSAGE["content"]},
               {"role": "user", "content": "Thanks. Summarise it in one line."}]
    body = {**CLAUDE_CODE, "tools": [BASH], "messages": history, "stream": False}
    response = post(gw, {"model": "kimi:agent", **body})
    assert response.status_code == 200, response.text
    assistant = [m for m in capture.last["body"]["messages"] if m["role"] == "assistant"]
    assert assistant[0]["content"] == "A new interactive interpreter."  # the search blocks stay Claude's


def test_the_demo_claude_refuses_a_beta_field_without_its_beta(gateway: Gateway) -> None:
    """The demo Claude answers like the real API: context_management needs its beta. Through the
    gateway the client's beta reaches it, so Claude Code's request is served."""
    body = {"model": "claude:default", "max_tokens": 200, "messages": [{"role": "user", "content": "Hi"}],
            "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}}
    demo = gateway.demo
    direct = httpx.post(f"{demo.base_url('claude')}/v1/messages", json={**body, "model": demo.model("claude")},
                        headers={"x-api-key": demo.spec("claude").api_key or "", "anthropic-version": "2023-06-01"},
                        timeout=10)
    assert direct.status_code == 400 and "context_management" in direct.text
    assert post(gateway, body).status_code == 200
    refused = post(gateway, body, {k: v for k, v in HEADERS.items() if k != "anthropic-beta"})
    assert refused.status_code == 400 and refused.json()["type"] == "error"  # Claude's 400, in Anthropic's shape


@pytest.mark.parametrize("stream", [True, False], ids=["sse", "json"])
def test_claude_code_web_search_through_the_demo_claude(gateway: Gateway, stream: bool) -> None:
    """``make run``'s demo Claude searches when offered web_search and asked to: its blocks and events
    reach Claude Code through the gateway as Claude sent them (every event one of the SDK's types)."""
    body = {**CLAUDE_CODE, "model": "auto", "stream": stream, "max_tokens": 4096,
            "thinking": {"type": "enabled", "budget_tokens": 2048}}
    response = post(gateway, body)
    assert response.status_code == 200, response.text
    assert response.headers["x-router-route"] == "claude:default"
    got = gateway.demo.stats("claude")["last_requests"][-1]
    assert got["headers"]["anthropic-beta"] == BETAS and got["body"]["tools"] == CLAUDE_CODE["tools"]
    if stream:
        frames = door_conformance.anthropic_stream(response.content)
        blocks = [f[1]["content_block"] for f in frames if f[0] == "content_block_start"]
        usage = frames[-2][1]["usage"]
    else:
        message = response.json()
        door_conformance.assert_strict(door_conformance.ANTHROPIC_MESSAGE.validate_python(message), message)
        blocks, usage = message["content"], message["usage"]
    assert [b["type"] for b in blocks] == ["thinking", "server_tool_use", "web_search_tool_result", "text"]
    assert blocks[2]["tool_use_id"] == blocks[1]["id"] and blocks[2]["content"][0]["type"] == "web_search_result"
    assert usage["server_tool_use"]["web_search_requests"] == 1


@pytest.mark.parametrize("stream", [True, False], ids=["sse", "json"])
def test_the_chat_door_may_offer_claudes_web_search_too(gateway: Gateway, stream: bool) -> None:
    """A chat client's Anthropic-defined tool goes to Claude as it is (dispatch/anthropic.py): the
    search runs there and the answer is its text — no tool call for the client to run."""
    client = gateway.client()
    kwargs: dict[str, Any] = {"model": "auto", "max_tokens": 300, "tools": [WEB_SEARCH],
                              "messages": [{"role": "user", "content": "Search the web for the Python release."}]}
    if stream:
        chunks = list(client.chat.completions.create(stream=True, **kwargs))
        assert not any(c.choices and c.choices[0].delta.tool_calls for c in chunks)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        route = chunks[-1].model_extra["router"]["route"]  # type: ignore[index]
    else:
        answer = client.chat.completions.create(**kwargs)
        assert answer.choices[0].message.tool_calls is None and answer.choices[0].finish_reason == "stop"
        text, route = answer.choices[0].message.content or "", answer.model_extra["router"]["route"]  # type: ignore[index]
    assert route == "claude:default" and text
    sent = gateway.demo.stats("claude")["last_requests"][-1]["body"]
    assert sent["tools"] == [WEB_SEARCH]


@pytest.mark.parametrize("model", ["claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"])
def test_claude_codes_own_model_names_reach_claude(gw: Gateway, capture: CaptureUpstream, model: str) -> None:
    """Claude Code left at its defaults names dated models (its main one and its background haiku):
    a snapshot resolves as its alias, any other Claude name through the packaged ``claude-*`` family."""
    response = post(gw, {"model": model, **{k: v for k, v in CLAUDE_CODE.items() if k != "model"}})
    assert response.status_code == 200, response.text
    assert response.headers["x-router-route"] == "claude:default"
    assert capture.last["body"]["model"] == "claude-sonnet-4-5"  # the route's model, as for any direct route
