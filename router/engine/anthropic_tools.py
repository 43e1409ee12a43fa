"""Anthropic-defined tools: which tools in a request only Claude's own Messages API can serve.

Anthropic's tool reference (platform.claude.com/docs/en/agents-and-tools/tool-use/tool-reference)
lists two kinds besides the client's own ``input_schema`` tools, both named by a versioned ``type``
(``web_search_20250305``, ``bash_20250124``, …) and carrying no schema:
- **server tools** run on Anthropic's side (web search, web fetch, code execution, tool search,
  advisor, the MCP connector's ``mcp_toolset``): nothing else can run them;
- **client tools** (bash, text editor, computer use, memory) run in the client, but their schema is
  Anthropic's and only Claude is trained on it.
Either way only a route that sends the client's Messages request to Claude as it came can serve the
request, so routing treats such a tool as a requirement (``decide``), like a modality.
"""

from __future__ import annotations

from typing import Any

from router.policy.model import Backend

_CLIENT_PREFIXES = ("bash_", "text_editor_", "computer_", "memory_")
MCP_TOOLSET = "mcp_toolset"  # the MCP connector's server-side toolset (mcp-client-2025-11-20 beta)


def is_anthropic_tool(kind: Any) -> bool:
    """Is ``kind`` (a tool's ``type``) one Anthropic defines? Versioned ``name_YYYYMMDD`` types, and
    ``mcp_toolset``. Checked per tool without a regex: the suffix is ``_`` and 8 digits."""
    if not isinstance(kind, str):
        return False
    return kind == MCP_TOOLSET or (len(kind) > 9 and kind[-9] == "_" and kind[-8:].isdigit())


def is_server_tool(kind: str) -> bool:
    """Run by Anthropic: web_search_, web_fetch_, code_execution_, tool_search_tool_, advisor_,
    mcp_toolset — and any newer type that is not one of the four client tools (wording only)."""
    return not kind.startswith(_CLIENT_PREFIXES)


def describe(tool: dict[str, Any]) -> str:
    """How the decision names a tool, e.g. ``web_search (web_search_20250305, a server tool)``."""
    kind = str(tool.get("type"))
    role = "a server tool" if is_server_tool(kind) else "a client tool with Anthropic's schema"
    return f"{tool.get('name') or tool.get('mcp_server_name') or kind} ({kind}, {role})"


def anthropic_tools(tools: list[Any]) -> tuple[str, ...]:
    """The Anthropic-defined tools among a request's tools, described (``describe``). Runs on every
    chat request with tools: a plain loop, function tools skipped first (~0.05 µs a tool)."""
    found: list[str] = []
    for tool in tools:
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function" and is_anthropic_tool(kind):
            found.append(describe(tool))
    return tuple(dict.fromkeys(found)) if found else ()  # each once: mcp_servers and its toolset name one server


def runs_anthropic_tools(backend: Backend) -> bool:
    """Does this backend get the client's Messages request as it came (``dispatch.anthropic``'s
    native client), Anthropic-defined tools included?"""
    return backend.provider == "anthropic" and not backend.uses_relay


def why_not(tools: tuple[str, ...], backend: str) -> str:
    """The decision's sentence for a route that cannot serve them."""
    return f"only a Claude route (Anthropic's Messages API) can serve {', '.join(tools)}; {backend} cannot"
