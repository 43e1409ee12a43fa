"""A small pooled HTTP/1.1 client for the relay's hot path: asyncio Protocols plus httptools (llhttp).

Why not aiohttp here: per request its client builds a request and a response object, URL objects,
header multidicts, timer contexts and a stream reader, and reschedules a timer on every read —
py-spy put dispatch at ~30 % of the gateway's CPU per request. This client writes the request in
one ``write`` (head + body), feeds the socket's bytes to httptools and hands the body on as it
arrives: buffered for ``read()``, or pushed into a ``BodySink`` (``sse.DataLines``) for streams.

What it does:
- keep-alive pool per (scheme, host, port), most recently used first, under one cap on open
  connections (``max_connections``; waiting for a slot counts against the connect timeout);
  idle connections are not reused after ``idle_s`` (15 s, aiohttp's default); one the server closed
  sooner (uvicorn's and vLLM's keep-alive is 5 s) leaves the pool when its FIN is read;
- Content-Length, chunked and read-until-close bodies; 1xx answers skipped;
- ``accept-encoding: identity`` is asked for (RFC 9110 §12.5.3): compressing JSON on a LAN and SSE
  frame by frame costs both sides CPU for nothing; gzip/deflate are still decoded if an upstream
  sends them anyway;
- TLS with ``ssl.create_default_context()`` for https;
- timeouts: ``connect_s`` (pool slot + TCP + TLS), ``total_s`` (the whole exchange: a JSON call),
  ``read_s`` (the longest silence while waiting for the head or the body: a stream) — aiohttp's
  ``connect``/``total``/``sock_read``; every timeout raises ``TimeoutError``;
- a connection goes back to the pool only when its message ended cleanly and the server keeps it
  alive; one that errors, times out or is closed half-read is closed;
- backpressure: a sink that says it is full pauses reading from the socket until it drains;
- a kept-alive connection that the server closed before sending a byte back is retried once, on a
  fresh connection (the server's idle timeout racing the request).
No proxies: like the aiohttp session it replaces (``trust_env=False``), no ``*_PROXY`` is read.

Errors::

    Http1Error         a connection-level failure (the relay's kind: "connection")
     ├─ ConnectError   no connection (refused, name not resolved, TLS handshake failed)
     ├─ ClosedError    the server closed the connection before its answer ended
     └─ ProtocolError  an answer we do not accept: malformed, head too large, unknown encoding
    TimeoutError       any timeout (the relay's kind: "timeout")
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import zlib
from collections import deque
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

import httptools


class Http1Error(Exception):
    """A connection-level failure talking to an upstream."""


class ConnectError(Http1Error):
    """No connection could be made."""


class ClosedError(Http1Error):
    """The server closed the connection before its answer ended (a truncated body included)."""


class ProtocolError(Http1Error):
    """The server's answer is not HTTP/1.1 this client accepts."""


class BodySink(Protocol):
    """Where a streamed body goes, de-chunked and decoded, as it arrives (``sse.DataLines``)."""

    def bind(self, resume: Callable[[], None]) -> None:
        """``resume`` restarts reading once ``feed`` said the sink is full and it has drained."""

    def feed(self, data: bytes) -> bool:
        """Take bytes; False: the sink is full, pause reading until it calls ``resume``."""

    def feed_eof(self) -> None: ...

    def feed_error(self, exc: BaseException) -> None: ...


_IDENTITY = frozenset({"", "identity"})
_END_GRACE_S = 1.0  # how long a stream's logical end may wait for its HTTP end before the connection is dropped


class _Decoder:
    """gzip or deflate (zlib-wrapped, or raw as some servers send it) undone as the body arrives."""

    __slots__ = ("_may_be_raw", "_z")

    def __init__(self) -> None:
        self._z = zlib.decompressobj(wbits=47)  # 32 + 15: a gzip or zlib header, detected
        self._may_be_raw = True

    def decode(self, data: bytes) -> bytes:
        try:
            out = self._z.decompress(data)
        except zlib.error:
            if not self._may_be_raw:
                raise ProtocolError("the upstream sent a body that does not decompress") from None
            self._may_be_raw = False  # "deflate" without the zlib wrapper (RFC 9110 says wrapped; not all agree)
            self._z = zlib.decompressobj(wbits=-15)
            return self.decode(data)
        self._may_be_raw = False
        return out

    def end(self) -> bytes:
        tail = self._z.flush()
        if not self._z.eof:
            raise ProtocolError("the upstream's compressed body ended early")
        return tail


class Response:
    """An answer's status and headers (lower-case names); its body by ``read()`` or ``stream_into``.
    Call ``close()`` when done with it, whatever happened: an unfinished body closes the connection."""

    __slots__ = ("_chunks", "_conn", "_decoder", "_error", "_held", "_sink", "_waiter", "done", "headers",
                 "status", "until_close")

    def __init__(self, conn: _Conn) -> None:
        self._conn: _Conn | None = conn  # None once the message ended or failed
        self.status = 0
        self.headers: dict[str, str] = {}
        self.done = False
        self.until_close = False  # no length, not chunked: the body ends when the connection does
        self._chunks: list[bytes] = []
        self._sink: BodySink | None = None
        # A streamed body's pieces parsed from one read, handed to the sink together once the read
        # is parsed (``_flush``): an engine writes each frame as its own HTTP chunk, and a read
        # often carries a burst of them — one sink.feed per read, not one per chunk.
        self._held: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._decoder: _Decoder | None = None

    async def read(self) -> bytes:
        """The whole body."""
        if not self.done:
            if self._error is not None:
                raise self._error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            except BaseException:
                self.close()
                raise
        chunks = self._chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def stream_into(self, sink: BodySink) -> None:
        """Hand the body to ``sink`` as it arrives (what already arrived first)."""
        conn = self._conn
        if conn is not None:
            sink.bind(lambda: conn.resume(self))
        full = False
        for chunk in self._chunks:
            full = not sink.feed(chunk)
        self._chunks = []
        if self.done:
            sink.feed_eof()
        elif self._error is not None:
            sink.feed_error(self._error)
        else:
            self._sink = sink
            if full and conn is not None:
                conn.pause()

    def close(self) -> None:
        """Done with this answer: a connection whose body has not ended is closed, never pooled."""
        if self._conn is not None:
            self._conn.abort()

    def release_at_end(self) -> None:
        """The consumer has all it wants (a stream's ``[DONE]``) but the HTTP message may not have
        ended yet (the last chunk's terminator often comes in its own packet): give it a moment to
        end, then the connection goes back to the pool; if it does not, it is closed."""
        conn, self._conn = self._conn, None  # close() no longer concerns it
        if conn is not None:
            self._sink = None
            self._chunks = []
            self._held = []
            conn.finish_within(_END_GRACE_S)

    # --- called by the connection ---------------------------------------------------------
    def _body(self, data: bytes) -> None:
        if self._decoder is not None:
            data = self._decoder.decode(data)
            if not data:
                return
        self._deliver(data)

    def _deliver(self, data: bytes) -> None:
        if self._sink is None:
            self._chunks.append(data)
        else:
            self._held.append(data)  # fed when the read is parsed (_flush), or before the end or a failure

    def _flush(self) -> bool:
        """Feed the sink what this read brought; False: the sink is full (pause reading)."""
        held = self._held
        if not held:
            return True
        data = held[0] if len(held) == 1 else b"".join(held)
        held.clear()
        sink = self._sink
        return True if sink is None else sink.feed(data)

    def _flush_decoder(self) -> None:
        if self._decoder is not None:
            self._deliver(self._decoder.end())

    def _end(self) -> None:
        self.done = True
        self._conn = None
        if self._sink is not None:
            self._flush()
            self._sink.feed_eof()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self._conn = None
        if self._sink is not None:
            self._flush()  # the payloads before the failure first, as they arrived
            self._sink.feed_error(exc)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class _Origin:
    """One (scheme, host, port): where to connect, and its idle connections (insertion-ordered:
    ``popitem()`` gives the most recently used)."""

    __slots__ = ("host", "idle", "port", "tls")

    def __init__(self, host: str, port: int, tls: bool) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.idle: dict[_Conn, None] = {}


class _Target:
    """A URL worked out once: its origin and the request line and fixed headers, as bytes."""

    __slots__ = ("origin", "prefix")

    def __init__(self, origin: _Origin, prefix: bytes) -> None:
        self.origin, self.prefix = origin, prefix


class _Conn(asyncio.Protocol):
    """One connection: feeds received bytes to httptools and the parser's callbacks to the answer
    in flight (``_resp``); knows its pool, to go back to it or leave it."""

    __slots__ = ("_deadline", "_end_handle", "_head_raw", "_head_size", "_last_data", "_loop", "_origin", "_parser",
                 "_paused", "_pool", "_read_handle", "_read_s", "_resp", "_transport", "dead", "got_bytes",
                 "idle_since", "made", "reused")

    def __init__(self, pool: Pool, origin: _Origin, loop: asyncio.AbstractEventLoop) -> None:
        self._pool, self._origin, self._loop = pool, origin, loop
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._resp: Response | None = None
        self._head_size = 0  # header names and values seen (a huge head sent at once)
        self._head_raw = 0  # bytes received while the head is incomplete (a head that never ends)
        self._deadline: asyncio.TimerHandle | None = None
        self._read_s: float | None = None
        self._read_handle: asyncio.TimerHandle | None = None
        self._end_handle: asyncio.TimerHandle | None = None
        self._last_data = 0.0
        self._paused = False
        self.made = False
        self.dead = False
        self.reused = False  # has answered before: the server may have closed it while it sat idle
        self.got_bytes = False  # this exchange has received something
        self.idle_since = 0.0

    # --- the exchange ------------------------------------------------------------------------
    async def exchange(self, head: bytes, body: bytes, deadline: float | None, read_s: float | None) -> Response:
        if self.dead or self._transport is None:
            raise ClosedError("the connection closed before the request was sent")
        resp = self._resp = Response(self)
        self.got_bytes = False
        self._head_size = self._head_raw = 0
        loop = self._loop
        if deadline is not None:
            self._deadline = loop.call_at(deadline, self._timed_out)
        if read_s is not None:  # one timer per exchange, re-armed only when it fires early (see _read_check)
            self._read_s = read_s
            self._last_data = loop.time()
            self._read_handle = loop.call_at(self._last_data + read_s, self._read_check)
        if len(body) < 65536:
            self._transport.write(head + body)  # one segment for a typical request
        else:
            self._transport.write(head)
            self._transport.write(body)
        resp._waiter = loop.create_future()
        try:
            await resp._waiter
        except BaseException:
            self.abort()
            raise
        resp._waiter = None
        return resp

    def _timed_out(self) -> None:
        self._deadline = None
        self._fail(TimeoutError("the upstream did not answer in time"))

    def _read_check(self) -> None:
        # Data arrivals only note the time; the timer is moved when it fires, not on every read.
        self._read_handle = None
        if self._paused or self._read_s is None:
            return  # the consumer is behind, not the server; resume() re-arms
        due = self._last_data + self._read_s
        if self._loop.time() < due:
            self._read_handle = self._loop.call_at(due, self._read_check)
            return
        self._fail(TimeoutError("the upstream stopped sending"))

    def pause(self) -> None:
        if not self._paused and self._transport is not None and not self.dead:
            self._paused = True
            self._transport.pause_reading()

    def resume(self, resp: Response | None = None) -> None:
        if not self._paused or (resp is not None and resp is not self._resp):
            return  # a call for an exchange that is over
        self._paused = False
        if self._transport is not None and not self.dead:
            self._transport.resume_reading()
            self._last_data = self._loop.time()
            if self._read_s is not None and self._read_handle is None:
                self._read_handle = self._loop.call_at(self._last_data + self._read_s, self._read_check)

    def finish_within(self, grace_s: float) -> None:
        self.resume()
        self._end_handle = self._loop.call_later(grace_s, self.abort)

    def _stop_timers(self) -> None:
        for handle in (self._deadline, self._read_handle, self._end_handle):
            if handle is not None:
                handle.cancel()
        self._deadline = self._read_handle = self._end_handle = None
        self._read_s = None

    def _fail(self, exc: BaseException) -> None:
        resp, self._resp = self._resp, None
        self.abort()
        if resp is not None:
            resp._fail(exc)

    def _ended(self) -> None:
        resp = self._resp
        if resp is not None:
            try:
                resp._flush_decoder()
            except ProtocolError as exc:
                self._fail(exc)
                return
        self._resp = None
        self._stop_timers()
        keep = self._parser.should_keep_alive() and resp is not None and not resp.until_close
        if resp is not None:
            resp._end()
        if keep:
            self._pool._release(self)
        else:
            self.abort()

    def abort(self) -> None:
        """Close at once (a failed or half-read exchange, or one the server will not keep)."""
        self._stop_timers()
        resp, self._resp = self._resp, None
        if resp is not None and not resp.done and resp._error is None:
            resp._fail(ClosedError("the request was abandoned"))
        if self._transport is not None:
            self._transport.abort()
        self._dead()

    def _dead(self) -> None:
        if not self.dead:
            self.dead = True
            self._pool._forget(self)

    # --- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a stream transport (TCP or TLS)
        self.made = True
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:  # frames are small and latency-bound: no Nagle (uvloop and asyncio set it too; cheap to be sure)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data: bytes) -> None:
        resp = self._resp
        if resp is None:  # bytes nobody asked for on an idle connection: it is not usable
            self.abort()
            return
        self.got_bytes = True
        if self._read_s is not None:
            self._last_data = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._fail(cause if isinstance(cause, Http1Error) else ProtocolError(f"the upstream's answer: {cause}"))
            return
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(ProtocolError(f"the upstream sent a malformed answer: {exc}"))
            return
        held = resp._held
        if held:  # a streamed body: this read's pieces, in one feed (Response._flush, inlined: per read)
            data = held[0] if len(held) == 1 else b"".join(held)
            held.clear()
            sink = resp._sink
            if sink is not None and not sink.feed(data):
                self.pause()
        if self._resp is resp and not resp.status:  # the head is still incomplete
            self._head_raw += len(data)
            if self._head_raw > self._pool.max_head_bytes:
                self._fail(ProtocolError(f"the upstream's response head exceeds {self._pool.max_head_bytes} bytes"))

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost says how the answer ended

    def connection_lost(self, exc: Exception | None) -> None:
        resp = self._resp
        if resp is not None:
            if resp.until_close and resp.status and exc is None:
                self._ended()  # a body without length or chunking ends with the connection
            else:
                reason = f": {type(exc).__name__}" if exc is not None else ""
                self._fail(ClosedError(f"the upstream closed the connection before its answer ended{reason}"))
        self._stop_timers()
        self._dead()

    # --- httptools callbacks ----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value)
        if self._head_size > self._pool.max_head_bytes:
            raise ProtocolError(f"the upstream's response head exceeds {self._pool.max_head_bytes} bytes")
        headers = self._resp.headers  # type: ignore[union-attr]  # callbacks only run while an exchange is in flight
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        resp = self._resp
        assert resp is not None
        status = self._parser.get_status_code()
        if status < 200:
            resp.headers = {}  # 1xx: informational, the real answer follows
            return
        resp.status = status
        headers = resp.headers
        resp.until_close = ("content-length" not in headers and "chunked" not in headers.get("transfer-encoding", "")
                            and status not in (204, 304))
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding not in _IDENTITY:
            if encoding not in ("gzip", "x-gzip", "deflate"):
                raise ProtocolError(f"the upstream sent content-encoding {encoding[:40]!r}, which was not asked for")
            resp._decoder = _Decoder()
        waiter = resp._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_body(self, data: bytes) -> None:
        # Kept (or held for the sink until the read is parsed: data_received feeds it, and pauses
        # reading when the sink is full); decoded first when compressed.
        self._resp._body(data)  # type: ignore[union-attr]  # callbacks run only while an exchange is in flight

    def on_message_complete(self) -> None:
        resp = self._resp
        if resp is not None and not resp.status:
            self._head_size = self._head_raw = 0  # the end of a 1xx answer
            return
        self._ended()


class Pool:
    """Keep-alive connections per origin, at most ``max_connections`` open in all. One per process
    and event loop (connections belong to the loop that made them)."""

    def __init__(self, *, max_connections: int = 1024, idle_s: float = 15.0, max_head_bytes: int = 64 << 10,
                 ssl_context: ssl.SSLContext | None = None, user_agent: str = "model-router") -> None:
        self.max_connections = max_connections
        self.idle_s = idle_s
        self.max_head_bytes = max_head_bytes
        self._ssl = ssl_context
        self._user_agent = user_agent
        self._open = 0  # connections open or being opened
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._origins: dict[tuple[str, str, int], _Origin] = {}
        self._targets: dict[tuple[str, str], _Target] = {}
        self._closed = False

    @property
    def open_connections(self) -> int:
        return self._open

    @property
    def idle_connections(self) -> int:
        """Kept-alive connections waiting for a request, all origins."""
        return sum(len(origin.idle) for origin in self._origins.values())

    async def request(self, method: str, url: str, headers: dict[str, str] | HeaderLines, body: bytes = b"", *,
                      connect_s: float, total_s: float | None = None, read_s: float | None = None) -> Response:
        """Send one request; returns once the answer's head arrived. ``total_s`` bounds the whole
        exchange (through the body's end), ``read_s`` every wait for bytes (head and body)."""
        target = self._targets.get((method, url)) or self._target(method, url)
        lines = headers if isinstance(headers, HeaderLines) else header_lines(headers)
        head = target.prefix + lines + b"content-length: %d\r\n\r\n" % len(body)
        loop = asyncio.get_running_loop()
        deadline = None if total_s is None else loop.time() + total_s
        conn = self._idle(target.origin, loop) if not self._closed else None
        if conn is None:  # no kept-alive connection at hand: a slot, then a new connection
            conn = await self._acquire(target.origin, loop, connect_s, deadline, fresh=False)
        try:
            return await conn.exchange(head, body, deadline, read_s)
        except ClosedError:
            if not conn.reused or conn.got_bytes:
                raise
        # The server closed a kept-alive connection before answering (its idle timeout raced this
        # request): nothing came back, so send it once more, on a new connection.
        conn = await self._acquire(target.origin, loop, connect_s, deadline, fresh=True)
        return await conn.exchange(head, body, deadline, read_s)

    def _target(self, method: str, url: str) -> _Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url[:200]!r}")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        key = (parts.scheme, parts.hostname, port)
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = _Origin(parts.hostname, port, tls)
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{port}"
        if ":" in parts.hostname:
            host = f"[{parts.hostname}]" + ("" if parts.port is None else f":{port}")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        prefix = (f"{method} {path} HTTP/1.1\r\nhost: {host}\r\nuser-agent: {self._user_agent}\r\n"
                  "accept-encoding: identity\r\n").encode("latin-1")
        if len(self._targets) > 1024:  # URLs come from the policy: a few; never let them pile up
            self._targets.clear()
        target = self._targets[(method, url)] = _Target(origin, prefix)
        return target

    async def _acquire(self, origin: _Origin, loop: asyncio.AbstractEventLoop, connect_s: float,
                       deadline: float | None, *, fresh: bool) -> _Conn:
        if self._closed:
            raise ConnectError("the connection pool is closed")
        if not fresh and (conn := self._idle(origin, loop)) is not None:
            return conn
        limit = connect_s if deadline is None else min(connect_s, deadline - loop.time())
        async with asyncio.timeout(limit):  # aiohttp's connect timeout: a pool slot, TCP and TLS
            while self._open >= self.max_connections:
                if self._evict_one():
                    continue
                waiter = loop.create_future()
                self._waiters.append(waiter)
                try:
                    await waiter
                except BaseException:
                    if waiter.done() and not waiter.cancelled():
                        self._wake_one()  # woken, but leaving (a timeout): pass the turn on
                    elif waiter in self._waiters:
                        self._waiters.remove(waiter)
                    raise
                if not fresh and (conn := self._idle(origin, loop)) is not None:
                    return conn
            return await self._connect(origin, loop)

    def _idle(self, origin: _Origin, loop: asyncio.AbstractEventLoop) -> _Conn | None:
        idle = origin.idle
        while idle:
            conn, _ = idle.popitem()  # the most recently used: the likeliest to be alive
            if conn.dead or conn._transport is None or conn._transport.is_closing():
                conn.abort()
            elif loop.time() - conn.idle_since > self.idle_s:
                conn.abort()  # the server may be closing it right now
            else:
                return conn
        return None

    async def _connect(self, origin: _Origin, loop: asyncio.AbstractEventLoop) -> _Conn:
        self._open += 1  # reserved now; given back by the connection when it dies, or below
        made: list[_Conn] = []

        def factory() -> _Conn:
            made.append(_Conn(self, origin, loop))
            return made[-1]

        try:
            if origin.tls:
                _, conn = await loop.create_connection(factory, origin.host, origin.port,
                                                       ssl=self._ssl_context(), server_hostname=origin.host)
            else:
                _, conn = await loop.create_connection(factory, origin.host, origin.port)
        except BaseException as exc:
            if not (made and made[0].made):  # a connection that was made gives its slot back itself
                self._open -= 1
                self._wake_one()
            if isinstance(exc, OSError):  # ssl.SSLError and socket.gaierror are OSErrors too
                raise ConnectError(f"cannot connect to {origin.host}:{origin.port}: {type(exc).__name__}: {exc}") \
                    from None
            raise
        return conn

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()  # loads the system CAs: once, not per connection
        return self._ssl

    def _evict_one(self) -> bool:
        """Close the longest-idle connection of any origin, to open one elsewhere."""
        for origin in self._origins.values():
            if origin.idle:
                conn = next(iter(origin.idle))
                conn.abort()
                return True
        return False

    def _release(self, conn: _Conn) -> None:
        if self._closed or conn.dead:
            conn.abort()
            return
        conn.resume()
        conn.reused = True
        conn.idle_since = conn._loop.time()
        conn._origin.idle[conn] = None
        self._wake_one()

    def _forget(self, conn: _Conn) -> None:
        conn._origin.idle.pop(conn, None)
        if conn.made:
            self._open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        """Close the idle connections; those in use close when their exchange ends."""
        self._closed = True
        for origin in self._origins.values():
            for conn in list(origin.idle):
                conn.abort()


class HeaderLines(bytes):
    """Request header lines already checked and encoded (``header_lines``): a caller that sends
    the same headers again and again (the relay, per backend and key) builds them once."""


def header_lines(headers: dict[str, str]) -> HeaderLines:
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    if lines.count("\n") != len(headers) or lines.count("\r") != len(headers):
        raise ProtocolError("a request header contains a line break")  # header injection: never sent
    try:
        return HeaderLines(lines.encode("latin-1"))
    except UnicodeEncodeError:
        raise ProtocolError("a request header is not latin-1 text") from None
