"""Anthropic-defined tools (server tools such as web search, and the client tools whose schema is
Anthropic's) as a routing requirement: only Claude routes are eligible, the decision says why; the
Messages converter keeps them for routing and accepts server-tool blocks replayed in the history.

Tool kinds: platform.claude.com/docs/en/agents-and-tools/tool-use/tool-reference.
"""

from __future__ import annotations

from typing import Any

import pytest

from router.dispatch.anthropic import anthropic_request
from router.doors import anthropic_messages as am
from router.engine import anthropic_tools
from router.engine.decide import Label, Limits, decide
from router.engine.request_facts import extract_facts
from router.engine.signals import PriorSignals
from router.policy.loader import load_policy_text
from router.policy.model import Policy
from tests.conftest import default_policy

WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
BASH = {"type": "bash_20250124", "name": "bash"}
READ = {"name": "Read", "description": "Read a file.",
        "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}}
ENV = {"KIMI_API_BASE": "http://kimi.test/v1", "OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k",
       "MOONSHOT_API_KEY": "k"}


def policy() -> Policy:
    import yaml

    return load_policy_text(yaml.safe_dump(default_policy()), env=ENV).policy


@pytest.mark.parametrize(("kind", "anthropic", "server"), [
    ("web_search_20250305", True, True), ("web_fetch_20250910", True, True),
    ("code_execution_20250825", True, True), ("tool_search_tool_regex_20251119", True, True),
    ("mcp_toolset", True, True), ("bash_20250124", True, False), ("text_editor_20250728", True, False),
    ("computer_20250124", True, False), ("memory_20250818", True, False),
    ("custom", False, None), ("function", False, None), ("web_search", False, None), ("x_2025031", False, None),
    (None, False, None), (7, False, None),
])
def test_which_tool_types_anthropic_defines_and_who_runs_them(kind: Any, anthropic: bool, server: bool | None) -> None:
    assert anthropic_tools.is_anthropic_tool(kind) is anthropic
    if server is not None:
        assert anthropic_tools.is_server_tool(kind) is server


def test_the_converter_keeps_anthropic_tools_for_routing_and_converts_the_clients_own() -> None:
    chat = am.to_chat_request({"model": "auto", "max_tokens": 100, "tools": [READ, WEB_SEARCH, BASH],
                               "messages": [{"role": "user", "content": "Find the latest release notes."}]})
    assert chat["tools"][0] == {"type": "function", "function": {
        "name": "Read", "parameters": READ["input_schema"], "description": "Read a file."}}
    assert chat["tools"][1:] == [WEB_SEARCH, BASH]  # as sent
    assert extract_facts(chat).anthropic_tools == (
        "web_search (web_search_20250305, a server tool)",
        "bash (bash_20250124, a client tool with Anthropic's schema)")


def test_mcp_servers_count_as_server_tools() -> None:
    chat = am.to_chat_request({"model": "auto", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}],
                               "mcp_servers": [{"type": "url", "url": "https://mcp.example/sse", "name": "docs"}]})
    assert extract_facts(chat).anthropic_tools == ("docs (mcp_toolset, a server tool)",)
    with pytest.raises(am.MessagesRequestInvalid):
        am.to_chat_request({"model": "auto", "max_tokens": 100, "mcp_servers": "docs",
                            "messages": [{"role": "user", "content": "hi"}]})


def test_server_tool_blocks_replayed_in_the_history_are_accepted_and_left_to_claude() -> None:
    """Claude Code replays Claude's earlier answer as it came: the search's call and results, then the text."""
    history = [
        {"role": "user", "content": "What changed in Python 3.13?"},
        {"role": "assistant", "content": [
            {"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search", "input": {"query": "python 3.13"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01", "content": [
                {"type": "web_search_result", "url": "https://docs.python.org/3.13/whatsnew/3.13.html",
                 "title": "What's New In Python 3.13", "encrypted_content": "Eo8BCioIAhgBIiQ", "page_age": None}]},
            {"type": "text", "text": "A new interactive interpreter and free-threaded builds."}]},
        {"role": "user", "content": "And 3.14?"},
    ]
    chat = am.to_chat_request({"model": "auto", "max_tokens": 100, "messages": history})
    assert chat["messages"][1] == {"role": "assistant",
                                   "content": "A new interactive interpreter and free-threaded builds."}
    assert extract_facts(chat).anthropic_tools == ()  # no tool offered now: any route may answer


def run(tools: list[dict[str, Any]], *, direct_route: str | None = None) -> Any:
    chat = {"model": "auto", "messages": [{"role": "user", "content": "Search the web for the news."}], "tools": tools}
    return decide(policy(), extract_facts(chat), Label("agentic"), Limits(max_cost_usd=1.0, latency_budget_ms=600_000),
                  PriorSignals(policy()), direct_route=direct_route)


def test_a_server_tool_makes_claude_routes_the_only_eligible_ones() -> None:
    decision = run([WEB_SEARCH])
    assert decision.chosen is not None and decision.chosen.route == "claude:default"
    assert [c.route for c in decision.chain] == ["claude:default"]  # no fallback that would drop the tool
    for cand in decision.candidates:
        if cand.route != "claude:default":
            assert "tools" in cand.reasons
            assert cand.why[cand.reasons.index("tools")] == (
                "only a Claude route (Anthropic's Messages API) can serve web_search "
                f"(web_search_20250305, a server tool); {cand.backend} cannot")
    assert run([{"type": "function", "function": {"name": "f", "parameters": {}}}]).chosen.route != "claude:default"


def test_with_no_claude_route_the_decision_names_the_tool() -> None:
    decision = run([BASH], direct_route="kimi:agent")
    assert decision.chosen is None and not decision.unavailable  # a client's mistake (400), not an outage
    assert "bash (bash_20250124, a client tool with Anthropic's schema)" in decision.explain_rejections()


def test_the_chat_door_sends_anthropic_tools_to_claude_as_they_are() -> None:
    body, _ = anthropic_request({"model": "claude-sonnet-4-5", "max_tokens": 50, "tools": [
        WEB_SEARCH, {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "messages": [{"role": "user", "content": "hi"}]})
    assert body["tools"] == [WEB_SEARCH, {"name": "f", "description": "", "input_schema": {"type": "object"}}]


def test_beta_body_fields_on_the_chat_shape_kept_when_they_change_the_answer_else_left_out() -> None:
    """For Kimi/GPT: structured outputs' beta spelling (``output_format``) still binds the answer to
    the schema; context editing and the code-execution container only tune Claude's side."""
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    chat = am.to_chat_request({"model": "auto", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}],
                               "output_format": {"type": "json_schema", "schema": schema},
                               "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
                               "container": "container_011CPR5CNjB747bTd36fQLFk"})
    assert chat["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": schema, "strict": True}}
    assert "context_management" not in chat and "container" not in chat
    with pytest.raises(am.MessagesRequestInvalid) as info:
        am.to_chat_request({"model": "auto", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}],
                            "output_format": {"type": "json_object"}})
    assert info.value.param == "output_format"


def test_an_mcp_toolset_has_no_name_and_is_kept() -> None:
    toolset = {"type": "mcp_toolset", "mcp_server_name": "docs", "default_config": {"enabled": True}}
    chat = am.to_chat_request({"model": "auto", "max_tokens": 100, "tools": [toolset],
                               "messages": [{"role": "user", "content": "hi"}],
                               "mcp_servers": [{"type": "url", "url": "https://mcp.example/sse", "name": "docs"}]})
    assert chat["tools"][0] == toolset
    assert extract_facts(chat).anthropic_tools == ("docs (mcp_toolset, a server tool)",)  # named once


def test_search_result_blocks_are_text_for_other_models() -> None:
    """A RAG tool's results as search_result blocks (their citations are Claude's): text for Kimi/GPT."""
    result = {"type": "search_result", "source": "https://docs.example/api", "title": "API guide",
              "content": [{"type": "text", "text": "Use POST /v1/items."}], "citations": {"enabled": True}}
    chat = am.to_chat_request({"model": "auto", "max_tokens": 100, "messages": [
        {"role": "user", "content": "How do I create an item?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "search", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [result]}]},
        {"role": "user", "content": [result, {"type": "text", "text": "Summarise."}]}]})
    text = "[API guide](https://docs.example/api)\nUse POST /v1/items."
    assert chat["messages"][2] == {"role": "tool", "tool_call_id": "toolu_1", "content": text}
    assert chat["messages"][3]["content"][0] == {"type": "text", "text": text}
    with pytest.raises(am.MessagesRequestInvalid):
        am.to_chat_request({"model": "auto", "max_tokens": 100, "messages": [
            {"role": "user", "content": [{"type": "search_result", "source": "x"}]}]})
