"""MCP tools for sub-agents: one connection per server per swarm run, with the official ``mcp`` SDK.

``RunTools.open(servers)`` connects to every enabled server at once (streamable HTTP, or stdio for a
local program), lists its tools and offers them to sub-agents as OpenAI function tools. A server
that cannot be reached or listed is recorded in ``failed`` (its tools are simply not offered) — the
swarm goes on without it and names it. ``call`` never raises for a tool problem: a timeout, a
protocol error, a server gone mid-run or an ``is_error`` result all come back as a ``ToolOutcome``
whose text the model reads. Tool output is only ever *text handed to a model*; the gateway never
executes, evaluates or follows anything a tool returns.

Each connection lives in a task of its own (the SDK's anyio task groups must be entered and left by
the same task); agents call through it concurrently and ``aclose`` ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from router.policy.model import McpServer

ToolStatus = Literal["ok", "error", "timeout", "unavailable", "refused"]
RESULT_CHARS = 4_000  # what a model reads of one tool result
_NAME = re.compile(r"[^a-zA-Z0-9_-]")
_CLOSE_S = 5.0
# The SDK's HTTP client logs every request with its full URL at INFO: an MCP URL may carry a token,
# and a line per tool call is noise. Its warnings still show.
logging.getLogger("httpx2").setLevel(logging.WARNING)
# The SDK logs every JSON-RPC message — tool arguments, i.e. prompt text — at DEBUG: never in our logs.
logging.getLogger("mcp").setLevel(logging.WARNING)


@dataclass(frozen=True, slots=True)
class ToolSpec:
    server: str
    name: str  # the server's name for it
    exposed: str  # the function name the model sees (unique across servers)
    description: str
    parameters: dict[str, Any]

    def openai(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.exposed, "description": self.description[:1024],
                                                 "parameters": self.parameters or {"type": "object"}}}


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    tool: str  # exposed name
    server: str
    status: ToolStatus
    text: str  # what the model is shown (the result, or what went wrong)
    ms: float


_URL = re.compile(r"\b(?:https?|wss?)://\S+")


def describe(exc: BaseException) -> str:
    """A short, secret-free description of a connection/protocol failure (first leaf of a group);
    URLs are cut out (an MCP URL may carry a token) — the server's policy name identifies it."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = _URL.sub("<url>", str(exc).split("\n")[0])[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _text_of(result: Any) -> str:
    parts: list[str] = []
    for block in result.content or []:
        kind = getattr(block, "type", "")
        parts.append(str(getattr(block, "text", "")) if kind == "text" else f"[{kind} content omitted]")
    if not parts and result.structured_content is not None:
        parts.append(orjson.dumps(result.structured_content, default=str).decode())
    text = "\n".join(parts)
    return text if len(text) <= RESULT_CHARS else text[:RESULT_CHARS] + " …[truncated]"


class _Connection:
    """One MCP server for one run: a task owns the ``Client``; ``call`` is safe from any task."""

    def __init__(self, name: str, server: McpServer, timeout_s: float) -> None:
        self.name = name
        self.server = server
        self.timeout_s = timeout_s
        self.client: Client | None = None
        self.listed: list[Any] = []
        self.error: str | None = None
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _target(self) -> StdioServerParameters | str:
        if self.server.transport == "stdio":
            return StdioServerParameters(command=self.server.command, args=list(self.server.args))
        return self.server.url

    async def _own(self) -> None:
        try:
            async with Client(self._target(), read_timeout_seconds=self.timeout_s, cache=None) as client:
                self.listed = list((await client.list_tools()).tools)
                self.client = client
                self._ready.set()
                await self._closing.wait()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the SDK raises groups; any failure = this server is unavailable
            self.error = describe(exc)
        finally:
            self.client = None
            self._ready.set()

    async def open(self) -> None:
        self._task = asyncio.create_task(self._own(), name=f"mcp-{self.name}")
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._ready.wait()
        except TimeoutError:
            self.error = f"no answer to connect + tools/list within {self.timeout_s:g} s"
            self._task.cancel()
        if self.client is None and self.error is None:
            self.error = "the connection closed before listing its tools"

    async def call(self, name: str, arguments: dict[str, Any], timeout_s: float) -> tuple[ToolStatus, str]:
        client = self.client
        if client is None:
            return "unavailable", f"MCP server {self.name} is not connected ({self.error or 'closed'})"
        try:
            async with asyncio.timeout(timeout_s):
                result = await client.call_tool(name, arguments)
        except TimeoutError:
            return "timeout", f"tool {name} gave no result within {timeout_s:g} s"
        except Exception as exc:  # protocol or transport failure: the model is told, the run goes on
            return "unavailable", f"tool {name} on MCP server {self.name} failed: {describe(exc)}"
        if result.is_error:
            return "error", f"tool {name} reported an error: {_text_of(result)}"
        return "ok", _text_of(result)

    async def aclose(self) -> None:
        self._closing.set()
        if self._task is not None and not self._task.done():
            try:
                async with asyncio.timeout(_CLOSE_S):
                    await asyncio.shield(self._task)
            except (TimeoutError, Exception):
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task


class RunTools:
    """The MCP tools of one swarm run."""

    def __init__(self, connections: list[_Connection]) -> None:
        self._connections = {c.name: c for c in connections}
        self.failed: dict[str, str] = {c.name: c.error for c in connections if c.error}
        self.specs: dict[str, ToolSpec] = {}
        taken: set[str] = set()
        counts: dict[str, int] = {}
        for c in connections:
            for tool in c.listed:
                counts[tool.name] = counts.get(tool.name, 0) + 1
        for c in connections:
            for tool in c.listed:
                exposed = tool.name if counts[tool.name] == 1 else f"{c.name}__{tool.name}"
                exposed = _NAME.sub("_", exposed)[:64]
                if exposed in taken:
                    continue
                taken.add(exposed)
                self.specs[exposed] = ToolSpec(c.name, tool.name, exposed, tool.description or "",
                                               dict(tool.input_schema or {}))

    @classmethod
    async def open(cls, servers: dict[str, McpServer], timeout_s: float) -> RunTools:
        connections = [_Connection(name, server, timeout_s) for name, server in servers.items() if server.enabled]
        try:
            await asyncio.gather(*(c.open() for c in connections))
        except BaseException:  # cancelled (the client left): end every connection task before leaving
            await asyncio.gather(*(c.aclose() for c in connections), return_exceptions=True)
            raise
        return cls(connections)

    @property
    def available(self) -> bool:
        return bool(self.specs)

    def openai_tools(self) -> list[dict[str, Any]]:
        return [spec.openai() for spec in self.specs.values()]

    def cost_of(self, exposed: str) -> float:
        spec = self.specs.get(exposed)
        return self._connections[spec.server].server.cost_per_call_usd if spec else 0.0

    async def call(self, exposed: str, arguments: str, timeout_s: float) -> ToolOutcome:
        started = time.perf_counter()
        spec = self.specs.get(exposed)
        if spec is None:
            known = ", ".join(self.specs) or "none"
            return ToolOutcome(exposed, "", "error", f"there is no tool named {exposed!r} (tools: {known})", 0.0)
        try:
            args = orjson.loads(arguments or "{}")
        except orjson.JSONDecodeError:
            args = None
        if not isinstance(args, dict):
            return ToolOutcome(exposed, spec.server, "error",
                               f"the arguments of {exposed} must be a JSON object, got {arguments[:200]!r}", 0.0)
        status, text = await self._connections[spec.server].call(spec.name, args, timeout_s)
        return ToolOutcome(exposed, spec.server, status, text, (time.perf_counter() - started) * 1000)

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self._connections.values()), return_exceptions=True)
