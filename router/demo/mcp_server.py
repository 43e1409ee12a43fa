"""The demo MCP server: ``search`` over the bundled corpus and ``calculate``, for swarm sub-agents.

Built with the official ``mcp`` SDK (``MCPServer``), served over streamable HTTP (``/mcp``) next to
the demo upstreams, or on its own (``python -m router.demo.mcp_cli``: stdio, or ``--http``). ``McpBehavior`` makes it
slow or failing for fault tests; ``stats`` counts calls per tool.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from router.demo import corpus
from router.demo.calculator import CalculatorError, calculate


@dataclass(frozen=True, slots=True)
class McpBehavior:
    delay_s: float = 0.0  # before every tool answer (a slow server)
    fail: bool = False  # every tool raises (the SDK returns it as an ``is_error`` result)


@dataclass(slots=True)
class McpState:
    behavior: McpBehavior = McpBehavior()
    calls: Counter[str] = field(default_factory=Counter)

    def update(self, **fields: Any) -> McpBehavior:
        self.behavior = replace(self.behavior, **fields)
        return self.behavior

    def reset(self) -> None:
        self.behavior = McpBehavior()
        self.calls.clear()


TOOLS = ("search", "calculate")


def build_server(state: McpState | None = None, tools: tuple[str, ...] = TOOLS) -> MCPServer:
    """A server offering ``tools`` (a subset of ``TOOLS``)."""
    state = state or McpState()
    server: MCPServer = MCPServer("model-router-demo-tools", version="1")
    corpus.search("warm up")  # build the index now, not on the first call

    async def misbehave(tool: str) -> None:
        state.calls[tool] += 1
        behavior = state.behavior
        if behavior.delay_s:
            await asyncio.sleep(behavior.delay_s)
        if behavior.fail:
            raise ToolError(f"demo {tool} backend unavailable (injected failure)")

    async def search(query: str, k: int = 3) -> str:
        """Search the bundled corpus (cities, languages, clouds, databases, elements, protocols).
        Returns up to k documents as `[doc-id] title: text` lines."""
        await misbehave("search")
        found = corpus.search(query, k)
        if not found:
            return f"no document matches {query!r}"
        return "\n".join(f"[{d.id}] {d.title}: {d.text}" for d in found)

    async def calculate_expression(expression: str) -> str:
        """Evaluate an arithmetic expression (numbers, + - * / // % ** and parentheses)."""
        await misbehave("calculate")
        try:
            value = calculate(expression)
        except CalculatorError as exc:
            raise ToolError(str(exc)) from None
        return f"{expression} = {value:g}"

    if "search" in tools:
        server.tool(name="search")(search)
    if "calculate" in tools:
        server.tool(name="calculate")(calculate_expression)
    return server
