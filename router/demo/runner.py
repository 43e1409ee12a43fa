"""`DemoUpstreams`: the demo servers running on loopback in one background thread and event loop.

    with DemoUpstreams() as demo:                 # kimi (vllm), gpt (openai), claude (anthropic)
        demo.base_url("kimi")                     # http://127.0.0.1:PORT/v1
        demo.set_behavior("kimi", error_rate=1)
        demo.stats("kimi")["requests"]
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

import uvicorn
from aiohttp import web

from router.demo import anthropic_server, openai_server
from router.demo.behavior import DemoBehavior
from router.demo.mcp_server import McpBehavior, McpState, build_server
from router.demo.server_state import DemoServerSpec, DemoServerState

T = TypeVar("T")

DEFAULT_SPECS = (
    DemoServerSpec("kimi", "vllm"),
    DemoServerSpec("gpt", "openai"),
    DemoServerSpec("claude", "anthropic"),
)
# Kimi K2.5 on Moonshot's own API (the packaged policy's kimi-api backend): `make run`'s demo has it.
MOONSHOT_SPEC = DemoServerSpec("kimi-api", "moonshot")
ALL_SPECS = (*DEFAULT_SPECS, MOONSHOT_SPEC)


MCP_TOOLS = ("search", "calculate")


class _McpHost:
    """One demo MCP server (streamable HTTP at ``/mcp``) under uvicorn on the demo loop."""

    def __init__(self, tool: str) -> None:
        self.tool = tool
        self.state = McpState()
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        app = build_server(self.state, (self.tool,)).streamable_http_app(stateless_http=True, json_response=True)
        # A stop does not wait out a tool call held by an injected delay (tests set 30 s ones).
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                               access_log=False, lifespan="on", timeout_graceful_shutdown=1))
        self._task = asyncio.get_running_loop().create_task(server.serve())
        while not server.started:
            if self._task.done():
                self._task.result()  # raises the bind error
            await asyncio.sleep(0.01)
        self._server = server
        self.port = int(server.servers[0].sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = self._task = None


def create_app(state: DemoServerState) -> web.Application:
    if state.spec.kind == "anthropic":
        return anthropic_server.create_app(state)
    return openai_server.create_app(state)


async def start_server(state: DemoServerState) -> tuple[web.AppRunner, int]:
    """Binds one server; returns its runner and the port it got."""
    # aiohttp >= 3.9 no longer cancels handlers on disconnect by default; the demo wants to see it.
    runner = web.AppRunner(create_app(state), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, state.spec.host, state.spec.port, backlog=1024)
    await site.start()
    port = int(runner.addresses[0][1])
    return runner, port


def base_url_for(spec: DemoServerSpec, port: int) -> str:
    """What a client's `base_url` / litellm's `api_base` should be for this server."""
    root = f"http://{spec.host}:{port}"
    return root if spec.kind == "anthropic" else f"{root}/v1"


class DemoUpstreams:
    """Starts the demo servers on 127.0.0.1 (port 0 each) and gives access to them by name."""

    def __init__(self, specs: list[DemoServerSpec] | None = None, *, quality: Any = None, mcp: bool = True) -> None:
        """``quality``: a ``router.demo.quality.DemoQuality`` (the demo truth) shared by every server;
        ``mcp``: also start the demo MCP tool servers (search, calculate)."""
        specs = list(specs) if specs is not None else list(DEFAULT_SPECS)
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"demo server names must be unique, got {names}")
        self._states = {s.name: DemoServerState(s) for s in specs}
        for state in self._states.values():
            state.quality = quality
        self._ports: dict[str, int] = {}
        self._runners: list[web.AppRunner] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # The demo MCP tool servers for swarm sub-agents, on the same loop: one per tool, so a fault
        # in one (down, slow, failing) touches only the sub-agents that use that tool.
        self._mcp = {tool: _McpHost(tool) for tool in MCP_TOOLS} if mcp else {}

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> DemoUpstreams:
        if self._thread is not None:
            raise RuntimeError("DemoUpstreams already started")
        loop = asyncio.new_event_loop()
        ready: Future[None] = Future()
        self._loop = loop
        self._thread = threading.Thread(target=self._run, args=(loop, ready), name="demo-upstreams",
                                        daemon=True)
        self._thread.start()
        try:
            ready.result(timeout=30)
        except BaseException:
            self._thread.join(timeout=5)
            self._loop = self._thread = None
            raise
        return self

    def _run(self, loop: asyncio.AbstractEventLoop, ready: Future[None]) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start_all())
        except BaseException as exc:  # report bind errors to start() instead of dying silently
            ready.set_exception(exc)
            loop.close()
            return
        ready.set_result(None)
        loop.run_forever()
        loop.run_until_complete(self._stop_all())
        loop.close()

    async def _start_all(self) -> None:
        for name, state in self._states.items():
            runner, port = await start_server(state)
            self._runners.append(runner)
            self._ports[name] = port
        for host in self._mcp.values():
            await host.start()

    async def _stop_all(self) -> None:
        for host in self._mcp.values():
            await host.stop()
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop = self._thread = None
        self._ports.clear()

    def __enter__(self) -> DemoUpstreams:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self._states)

    def spec(self, name: str) -> DemoServerSpec:
        return self._state(name).spec

    def port(self, name: str) -> int:
        self._state(name)
        if name not in self._ports:
            raise RuntimeError("DemoUpstreams is not started; call start() or use it as a context manager")
        return self._ports[name]

    def base_url(self, name: str) -> str:
        """`http://127.0.0.1:PORT/v1` (OpenAI-style kinds) or `http://127.0.0.1:PORT` (anthropic)."""
        return base_url_for(self.spec(name), self.port(name))

    def metrics_url(self, name: str) -> str | None:
        """The engine metrics URL for `vllm`/`sglang` servers, None for vendor APIs."""
        if self.spec(name).kind not in ("vllm", "sglang"):
            return None
        return f"http://{self.spec(name).host}:{self.port(name)}/metrics"

    def model(self, name: str) -> str:
        return self.spec(name).served_model

    # -- the demo MCP tool server ------------------------------------------------------------
    def mcp_url(self, tool: str) -> str | None:
        """``http://127.0.0.1:PORT/mcp`` of the MCP server offering ``tool`` (search, calculate)."""
        host = self._mcp.get(tool)
        return None if host is None or host.port is None else f"http://127.0.0.1:{host.port}/mcp"

    def set_mcp_behavior(self, tool: str, **fields: Any) -> McpBehavior:
        async def apply() -> McpBehavior:
            return self._mcp[tool].state.update(**fields)

        return self._call(apply())

    def mcp_calls(self) -> dict[str, int]:
        async def read() -> dict[str, int]:
            return {t: n for host in self._mcp.values() for t, n in host.state.calls.items()}

        return self._call(read())

    def stop_mcp(self, tool: str) -> None:
        """Take one MCP server down (its port then refuses connections): the "server down" fault."""
        self._call(self._mcp[tool].stop())

    # -- control (thread-safe: runs on the servers' loop) ------------------------------------
    def set_behavior(self, name: str, **fields: Any) -> DemoBehavior:
        state = self._state(name)

        async def apply() -> DemoBehavior:
            return state.update_behavior(fields)

        return self._call(apply())

    def behavior(self, name: str) -> DemoBehavior:
        state = self._state(name)

        async def read() -> DemoBehavior:
            return state.behavior.merged({})

        return self._call(read())

    def stats(self, name: str) -> dict[str, Any]:
        state = self._state(name)

        async def read() -> dict[str, Any]:
            return copy.deepcopy(state.stats.snapshot())

        return self._call(read())

    def reset(self, name: str | None = None) -> None:
        states = [self._state(name)] if name is not None else list(self._states.values())

        async def apply() -> None:
            for state in states:
                state.reset()
            if name is None:
                for host in self._mcp.values():
                    host.state.reset()

        self._call(apply())

    def _state(self, name: str) -> DemoServerState:
        try:
            return self._states[name]
        except KeyError:
            raise KeyError(f"no demo server named {name!r} (defined: {', '.join(self._states)})") from None

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("DemoUpstreams is not started; call start() or use it as a context manager")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)
