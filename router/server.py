"""The HTTP server around the app: connection reaping, a connection cap, and a drain on shutdown.

What uvicorn 0.54 + httptools enforce by themselves: ``timeout_keep_alive`` closes a connection
idle *after* a response. Not enforced: a connection that never sends a byte, headers that trickle
in (slowloris), a body shorter than its ``content-length`` — each held forever; and accept() past
the file-descriptor limit fails for everyone. ``limit_concurrency`` answers 503 only once headers
are complete, while the idle sockets keep their descriptors. So this module adds, per connection:

- a header timeout: the request line and headers must arrive within ``header_timeout_s`` of the
  connection (or of the first byte of the next request on a kept-alive one);
- a body timeout: the whole body within ``body_timeout_s`` of the headers (408 in OpenAI's shape
  if nothing was answered yet);
- a connection cap below the descriptor limit: past it, the oldest connection with no request in
  progress is closed to make room; when every connection is busy, the new one gets a 503;
- a malformed request (e.g. a NUL byte in a header) gets a 400 in OpenAI's JSON shape, not text.

And for the whole server, ``Drain``: on SIGTERM uvicorn stops accepting and waits up to its grace
period, then cancels what is left (a JSON client got ``500 text/plain``, a stream was cut). Just
before that, ``Drain`` ends each request still in flight itself: 503 in OpenAI's shape when nothing
was sent yet, an error chunk and ``[DONE]`` for a stream under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import resource
import socket
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from router import errors
from router.accept import Acceptor

log = logging.getLogger("router")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Descriptors kept free under the cap: upstream connections, log files, the policy file, the demo.
_FD_HEADROOM = 160

# The collector's young-generation threshold while serving. CPython's 700 made a stream-heavy load
# (c=64) run ~550 young and ~50 middle collections in 8 s: ~2.7% of the server's CPU (thread time
# inside gc callbacks), with middle-generation pauses up to 6 ms. A request's objects are nearly all
# freed by reference counting, so the net count rarely reaches 10,000: ~2 collections in the same
# 8 s. What start-up loaded is frozen already (Services.start); cycles still get collected.
GC_YOUNG_THRESHOLD = 10_000


def tune_collector() -> None:
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 0  # 0: derived from the process's descriptor limit

    def cap(self) -> int:
        """The connection cap: the configured one, never closer than the headroom to RLIMIT_NOFILE."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        by_fds = max(16, soft - _FD_HEADROOM) if soft != resource.RLIM_INFINITY else 1_000_000
        return min(self.max_connections, by_fds) if self.max_connections > 0 else by_fds


def _raw_response(status: int, reason: str, err: errors.RouterError) -> bytes:
    body = err.body_bytes()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode("ascii") + body


class _Guard:
    """Connections of one server, oldest first, with the limits they live under."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.cap = limits.cap()
        self.open: dict[GuardedProtocol, float] = {}  # insertion order = age
        self.evicted = 0
        self.refused = 0
        self.reaped = 0


class HeadWithBody:
    """One response's transport, holding its head until the first body bytes so both leave in one
    write: uvicorn writes the status line and headers on ``http.response.start`` and the body on the
    next message — two syscalls and two TCP segments per answer, and a stream's client waits for the
    second one. The head is never held past the current turn of the event loop."""

    __slots__ = ("_head", "_loop", "_started", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head = b""
        self._started = False

    def write(self, data: bytes) -> None:
        if not self._started:  # the head (or a 100 Continue): wait for the body, at most this turn
            self._started = True
            self._head = data
            self._loop.call_soon(self.flush)
            return
        if self._head:
            data, self._head = self._head + data, b""
        self._transport.write(data)

    def flush(self) -> None:
        if self._head:
            head, self._head = self._head, b""
            if not self._transport.is_closing():
                self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:  # anything else uvicorn may ask of a transport
        return getattr(self._transport, name)


# The scope extension under which ``GuardedProtocol`` offers a request its ``DisconnectWatch``.
DISCONNECT_WATCH = "router.disconnect_watch"


class DisconnectWatch:
    """Tells one request, by a plain call, that its client's connection is gone.

    The ASGI way to learn it is a task parked in ``receive()`` for the whole request: a task to
    create, step, wake and cancel on every request (~6.5 µs of CPU, in process). The protocol
    knows when the connection is lost; it calls ``callback`` (set by the front door while the
    work runs) — nothing to schedule. ``gone`` says it happened while nobody was listening.
    It holds no reference to the request's cycle (whose scope holds it): a reference cycle per
    request would leave every request's cycle, scope and event to the garbage collector."""

    __slots__ = ("callback", "gone")

    def __init__(self) -> None:
        self.callback: Callable[[], None] | None = None
        self.gone = False

    def lost(self) -> None:
        self.gone = True
        callback, self.callback = self.callback, None
        if callback is not None:
            callback()


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header/body timeouts, the cap, JSON 400s, and a
    ``DisconnectWatch`` per request."""

    guard: _Guard  # set on the subclass made by ``guarded_protocol``

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._in_headers = False
        self._pending: float | None = None  # the deadline this read's parse asks for, armed once it ends
        # The requests of this connection not yet answered, with their watch (pipelined: several).
        self._watches: list[tuple[Any, DisconnectWatch]] = []
        guard = self.guard
        guard.open[self] = time.monotonic()
        self._arm(guard.limits.header_timeout_s)
        if len(guard.open) > guard.cap and not self._make_room():
            guard.refused += 1
            err = errors.Unavailable("The gateway is at its connection limit; retry shortly.")
            transport.write(_raw_response(503, "Service Unavailable", err))
            transport.close()

    def _make_room(self) -> bool:
        """Close the oldest connection that has no request in progress (idle or still sending headers)."""
        for other in self.guard.open:
            if other is not self and (other.cycle is None or other.cycle.response_complete):
                self.guard.evicted += 1
                other._close()
                return True
        return False

    def _arm(self, delay_s: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(delay_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _close(self) -> None:
        self.guard.open.pop(self, None)
        self._disarm()
        if not self.transport.is_closing():
            self.transport.close()

    def _expired(self) -> None:
        self._deadline = None
        self.guard.reaped += 1
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and not cycle.response_started:
            # Headers came, the body did not: say so (the app sees a disconnect and stops).
            err = errors.RouterError("The request body did not arrive in time.", code="request_timeout")
            with contextlib.suppress(Exception):
                self.transport.write(_raw_response(408, "Request Timeout", err))
        self._close()

    def data_received(self, data: bytes) -> None:
        # uvicorn cancels its keep-alive timer on any byte; a request that starts must still
        # complete its headers in time, however slowly it trickles in.
        idle = self.cycle is None or self.cycle.response_complete
        if idle and not self._in_headers:
            self._in_headers = True
            self._pending = self.guard.limits.header_timeout_s
        try:
            super().data_received(data)  # the parser calls on_headers_complete / on_message_complete
        finally:
            # Armed after the parse, for the phase the request is left in: a request that arrived
            # whole (most do) never arms a header or a body timer (two timers made and cancelled).
            if self._pending is not None:
                if not self.transport.is_closing():  # e.g. answered 400 and closed by the parse
                    self._arm(self._pending)
                self._pending = None

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._pending = self.guard.limits.body_timeout_s
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None:
            cycle.transport = HeadWithBody(self.transport, self.loop)  # type: ignore[assignment]
            watch = DisconnectWatch()
            if self._watches:
                self._watches = [(c, w) for c, w in self._watches if not c.response_complete]
            self._watches.append((cycle, watch))
            extensions: dict[str, Any] = cycle.scope.setdefault("extensions", {})
            extensions[DISCONNECT_WATCH] = watch

    def on_message_complete(self) -> None:
        self._pending = None
        self._disarm()  # the app has the whole request; from here the answer takes what it takes
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.open.pop(self, None)
        self._disarm()
        super().connection_lost(exc)
        watches, self._watches = self._watches, []
        for cycle, watch in watches:
            if not cycle.response_complete:
                watch.lost()

    def send_400_response(self, msg: str) -> None:
        err = errors.InvalidRequest(f"{msg} (malformed request line or headers)")
        self.transport.write(_raw_response(400, "Bad Request", err))
        self.transport.close()


# Headers that decide who the caller is or what the body is: sent twice, one server component would
# read the first and another the last; so a request that repeats one is refused outright.
_SINGLE_HEADERS = frozenset({b"authorization", b"x-api-key", b"content-length", b"content-type", b"host"})


def repeated_header(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The first of ``_SINGLE_HEADERS`` that appears more than once (names arrive lower-cased)."""
    seen: set[bytes] = set()
    for name, _ in headers:
        if name in _SINGLE_HEADERS:
            if name in seen:
                return name.decode("latin-1")
            seen.add(name)
    return None


async def refuse_repeated_header(scope: Scope, send: Send) -> bool:
    """Answer 400 (OpenAI's shape) if a header that must be single is repeated; True if it did."""
    name = repeated_header(scope["headers"])
    if name is None:
        return False
    err = errors.InvalidRequest(f"The {name} header is sent more than once; send it once.", param=name)
    await send({"type": "http.response.start", "status": 400, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": err.body_bytes()})
    return True


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedProtocol]:
    """A protocol class for uvicorn's ``http=`` bound to one server's guard."""
    return type("GuardedHttpToolsProtocol", (GuardedProtocol,), {"guard": _Guard(limits)})


class Drain:
    """Ends the requests still in flight, in their protocol's shape, before the server cancels them."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ended: set[asyncio.Task[Any]] = set()
        self.draining = False

    def start(self, after_s: float) -> None:
        """Shutdown began: in ``after_s`` seconds, end whatever is still running."""
        self.draining = True
        asyncio.get_running_loop().call_later(max(0.0, after_s), self.end_all)

    def end_all(self) -> None:
        for task in list(self._tasks):
            if not task.done():
                self._ended.add(task)
                task.cancel()

    async def serve(self, app: Callable[..., Awaitable[None]], scope: Scope, receive: Receive, send: Send,
                    door: Any = None) -> None:
        """Run one request, ``app(scope, receive, send[, door])``; if the drain ends it, finish the
        exchange in the door's shape (``door.error_body``; for a stream ``door.stream_error_frames``
        if it has one) — OpenAI's without a door."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        exchange = _Exchange(send)
        try:
            if door is None:
                await app(scope, receive, exchange)
            else:
                await app(scope, receive, exchange, door)
        except asyncio.CancelledError:
            if task not in self._ended:
                raise
            task.uncancel()
            await exchange.end(door)
        finally:
            self._tasks.discard(task)
            self._ended.discard(task)


class _Exchange:
    """``send`` that remembers what was sent (kept minimal: it runs on every message)."""

    __slots__ = ("_send", "done", "start")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.start: Message | None = None  # an app's first message is always http.response.start
        self.done = False

    def __call__(self, message: Message) -> Awaitable[None]:
        # A plain call handing back the server's awaitable: no coroutine of its own per message.
        if self.start is None:
            self.start = message
        elif not message.get("more_body", False):
            self.done = True
        return self._send(message)

    async def end(self, door: Any = None) -> None:
        """A 503 if nothing was sent; an error event (OpenAI's: a chunk and [DONE]) for a stream under way."""
        err = errors.Unavailable("The gateway is shutting down; this request was not finished. Retry it.",
                                 headers={"retry-after": "1"})
        body = door.error_body(err) if door is not None else err.body_bytes()
        stream_error_frames = getattr(door, "stream_error_frames", None)
        start = self.start
        sse = start is not None and any(k == b"content-type" and v.startswith(b"text/event-stream")
                                        for k, v in start.get("headers") or ())
        with contextlib.suppress(Exception):  # the client may be gone too
            if start is None:
                await self._send({"type": "http.response.start", "status": err.status,
                                  "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1"),
                                              (b"connection", b"close")]})
                await self._send({"type": "http.response.body", "body": body})
            elif sse and not self.done:
                frame = stream_error_frames(err) if stream_error_frames is not None else \
                    b"data: " + orjson.dumps(err.body()) + b"\n\ndata: [DONE]\n\n"
                await self._send({"type": "http.response.body", "body": frame, "more_body": False})


_STARTUP_FAILURE = 3  # uvicorn's exit status when start-up fails (uvicorn.server.STARTUP_FAILURE)


class GatewayServer(uvicorn.Server):
    """uvicorn's server, listening through ``Acceptor`` (every waiting connection accepted per turn of
    the loop, not one), with the drain started as soon as shutdown begins."""

    def __init__(self, config: uvicorn.Config, drain: Drain, *, drain_margin_s: float = 2.0) -> None:
        super().__init__(config)
        self.drain = drain
        self.drain_margin_s = drain_margin_s

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        config = self.config
        if sockets is not None or config.fd is not None or config.uds is not None or config.ssl is not None:
            await super().startup(sockets)  # not `router serve`'s way (no TLS there): uvicorn's own listener
            return
        sock = config.bind_socket()  # uvicorn's host/port socket (and its "running on" log line)
        sock.set_inheritable(False)  # bind_socket readies it for worker processes; we have none to hand it to
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            sock.close()
            sys.exit(_STARTUP_FAILURE)
        sock.listen(config.backlog)
        loop = asyncio.get_running_loop()

        def protocol() -> asyncio.Protocol:  # what uvicorn's startup builds per connection
            return config.http_protocol_class(config=config, server_state=self.server_state,  # type: ignore[call-arg]
                                              app_state=self.lifespan.state, _loop=loop)

        acceptor = Acceptor(loop, sock, protocol, max_per_wakeup=config.backlog)
        acceptor.start()
        self.servers = [acceptor]  # type: ignore[list-item]  # uvicorn calls close() and wait_closed()
        self.started = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        grace = self.config.timeout_graceful_shutdown
        if grace is not None:  # end them a little before uvicorn would cancel them
            self.drain.start(grace - min(self.drain_margin_s, grace / 4))
        await super().shutdown(sockets)
