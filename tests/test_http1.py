"""The relay's HTTP/1.1 client (router/dispatch/http1.py) against small servers started in each test.

Every test runs on asyncio's own loop and on uvloop (the gateway's). The servers speak raw HTTP/1.1
over loopback sockets so each can misbehave exactly as needed: close a kept-alive connection,
truncate a body, trickle or inflate a head, hold a stream.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import uvloop

from router.dispatch.http1 import ClosedError, ConnectError, Pool, ProtocolError
from router.sse import DataLines


@pytest.fixture(params=["asyncio", "uvloop"])
def event_loop_policy(request: pytest.FixtureRequest) -> Iterator[asyncio.AbstractEventLoopPolicy]:
    yield asyncio.DefaultEventLoopPolicy() if request.param == "asyncio" else uvloop.EventLoopPolicy()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]


class Server:
    """A loopback server running ``handler`` once per connection; counts connections and requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []  # every request body received, in order
        self.closed_by_client = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self.handler(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.closed_by_client.set()
        except asyncio.CancelledError:
            pass  # stopped with the test
        finally:
            writer.close()
            self._handlers.discard(task)

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        """One request's body (None: the client closed the connection)."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            self.closed_by_client.set()
            return None
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length)
        self.requests.append(body)
        return body

    def url(self, path: str = "/v1/chat/completions", scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):  # handlers still holding a connection (stalls, endless streams)
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)


Serve = Callable[[Handler], Awaitable[Server]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[Server] = []

    async def start(handler: Handler) -> Server:
        servers.append(await Server(handler).start())
        return servers[-1]

    yield start
    for server in servers:
        await server.stop()


def answer(body: bytes, *, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s" % (
        len(body), extra, body)


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
    while (body := await server.read_request(reader)) is not None:
        writer.write(answer(b'{"echo": %d}' % len(body)))
        await writer.drain()


async def call(pool: Pool, server: Server, body: bytes = b"{}", **timeouts: float) -> tuple[int, bytes]:
    resp = await pool.request("POST", server.url(), {"content-type": "application/json"}, body,
                              connect_s=timeouts.pop("connect_s", 5), **timeouts)
    try:
        return resp.status, await resp.read()
    finally:
        resp.close()


# --- bodies and keep-alive ----------------------------------------------------------------------
async def test_content_length_bodies_reuse_one_kept_alive_connection(serve: Serve) -> None:
    server = await serve(keep_answering)
    pool = Pool()
    for size in (2, 10, 100_000):  # the last one is written in two writes (head, then body)
        assert await call(pool, server, b"x" * size) == (200, b'{"echo": %d}' % size)
    assert server.connections == 1
    assert pool.open_connections == 1
    await pool.aclose()


async def test_a_connection_idle_too_long_is_not_reused(serve: Serve) -> None:
    server = await serve(keep_answering)
    pool = Pool(idle_s=0.05)
    assert await call(pool, server) == (200, b'{"echo": 2}')
    await asyncio.sleep(0.1)
    assert await call(pool, server) == (200, b'{"echo": 2}')
    assert server.connections == 2 and pool.open_connections == 1
    await pool.aclose()


async def test_a_chunked_body_is_de_chunked(serve: Serve) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while await server.read_request(reader) is not None:
            writer.write(CHUNKED_HEAD + chunked(b'{"a"', b": ", b"1}"))
    server = await serve(handler)
    pool = Pool()
    assert await call(pool, server) == (200, b'{"a": 1}')
    assert await call(pool, server) == (200, b'{"a": 1}')
    assert server.connections == 1
    await pool.aclose()


async def test_a_body_without_length_ends_with_the_connection_which_is_not_reused(
        serve: Serve) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"until\": ")
        await writer.drain()
        writer.write(b"\"close\"}")
    server = await serve(handler)
    pool = Pool()
    assert await call(pool, server) == (200, b'{"until": "close"}')
    assert await call(pool, server) == (200, b'{"until": "close"}')
    assert server.connections == 2
    await pool.aclose()


async def test_informational_answers_are_skipped_and_headers_read(serve: Serve) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n"
                     b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nX-Twice: a\r\nx-twice: b\r\n"
                     b"content-length: 2\r\n\r\n{}")
    server = await serve(handler)
    pool = Pool()
    resp = await pool.request("POST", server.url(), {}, b"{}", connect_s=5, total_s=5)
    assert (resp.status, await resp.read()) == (429, b"{}")
    assert resp.headers["retry-after"] == "3" and resp.headers["x-twice"] == "a, b" and "link" not in resp.headers
    await pool.aclose()


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
async def test_compressed_bodies_are_decoded_though_identity_is_asked_for(
        serve: Serve, encoding: str) -> None:
    seen_heads: list[bytes] = []
    plain = b'{"text": "' + b"compressible " * 500 + b'"}'
    packed = {"gzip": gzip.compress(plain), "deflate": zlib.compress(plain),
              "raw-deflate": zlib.compress(plain)[2:-4]}[encoding]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        seen_heads.append(await reader.readuntil(b"\r\n\r\n"))
        await reader.readexactly(2)
        name = encoding.removeprefix("raw-").encode()
        writer.write(CHUNKED_HEAD.replace(b"\r\n\r\n", b"\r\ncontent-encoding: " + name + b"\r\n\r\n")
                     + chunked(packed[:100], packed[100:]))
    server = await serve(handler)
    pool = Pool()
    assert await call(pool, server, b"{}", total_s=5) == (200, plain)
    assert b"accept-encoding: identity\r\n" in seen_heads[0]
    await pool.aclose()


# --- a kept-alive connection the server closed ----------------------------------------------------
async def test_a_kept_alive_connection_closed_by_the_server_is_retried_once_on_a_fresh_one(
        serve: Serve) -> None:
    async def one_answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(answer(b"{}"))  # keep-alive is promised, then the connection closes anyway
        await writer.drain()
    server = await serve(one_answer_then_close)
    pool = Pool()
    assert await call(pool, server) == (200, b"{}")
    await asyncio.sleep(0.05)  # the server's close has arrived: the pool drops the connection unused
    assert await call(pool, server) == (200, b"{}")
    assert server.connections == 2 and len(server.requests) == 2
    await pool.aclose()


async def test_the_close_racing_the_request_retries_only_when_nothing_came_back(
        serve: Serve) -> None:
    # The second request goes out on the kept-alive connection, which the server then closes
    # without answering (the race with an idle timeout): sent once more, on a new connection.
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(answer(b"{}"))
        await writer.drain()
        if server.connections == 1:
            await server.read_request(reader)  # read, then close without a byte back
    server = await serve(handler)
    pool = Pool()
    assert await call(pool, server) == (200, b"{}")
    assert await call(pool, server) == (200, b"{}")
    assert server.connections == 2 and len(server.requests) == 3  # the second request, sent twice
    await pool.aclose()


async def test_no_retry_once_bytes_came_back_nor_on_a_fresh_connection(
        serve: Serve) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        if server.connections == 1 and len(server.requests) == 1:
            writer.write(answer(b"{}"))
            await writer.drain()
            await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{")  # part of an answer, then closed
    server = await serve(handler)
    pool = Pool()
    assert await call(pool, server) == (200, b"{}")
    with pytest.raises(ClosedError):  # reused connection, but a byte came back: not sent again
        await call(pool, server)
    with pytest.raises(ClosedError):  # a fresh connection closing is an answer, not a race
        await call(pool, server)
    assert len(server.requests) == 3
    await pool.aclose()


# --- broken answers -------------------------------------------------------------------------------
@pytest.mark.parametrize("broken", [
    b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n" + b"x" * 50,
    CHUNKED_HEAD + b"5\r\nhello\r\n",  # no last chunk
    b"HTTP/1.1 200 OK\r\ncontent-len",  # the head cut short
])
async def test_a_truncated_answer_is_an_error(serve: Serve, broken: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(broken)
    server = await serve(handler)
    pool = Pool()
    with pytest.raises(ClosedError):
        await call(pool, server)
    assert pool.open_connections == 0
    await pool.aclose()


async def test_malformed_and_huge_heads_are_refused(serve: Serve) -> None:
    answers = [b"HTTP/1.1 2OO OK\r\n\r\n",
               b"HTTP/1.1 200 OK\r\nx-big: " + b"y" * (70 << 10) + b"\r\ncontent-length: 0\r\n\r\n",
               b"HTTP/1.1 200 OK\r\nx-endless: " + b"y" * (70 << 10),  # a header that never ends
               b"HTTP/1.1 200 OK\r\ncontent-encoding: br\r\ncontent-length: 0\r\n\r\n"]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(answers[server.connections - 1])
        await writer.drain()
        await reader.read()  # hold the connection: the client must give up by itself
    server = await serve(handler)
    pool = Pool()
    for expected in ("malformed", "exceeds", "exceeds", "content-encoding"):
        with pytest.raises(ProtocolError, match=expected):
            await call(pool, server, total_s=10)
    await pool.aclose()


async def test_a_big_head_under_the_limit_is_accepted_in_pieces(serve: Serve) -> None:
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(b"x-h%d: %s\r\n" % (i, b"v" * 1000) for i in range(40))

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        for i in range(0, len(head), 7000):  # ~40 KB of head (limit 64 KiB) in six writes
            writer.write(head[i:i + 7000])
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"content-length: 2\r\n\r\n{}")
    server = await serve(handler)
    pool = Pool()
    assert await call(pool, server, total_s=10) == (200, b"{}")
    await pool.aclose()


# --- timeouts -------------------------------------------------------------------------------------
async def stall_before_the_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
    await server.read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\n")  # the head begins, and never ends
    await reader.read()
    server.closed_by_client.set()


async def test_slow_headers_time_out_for_json_and_streams(serve: Serve) -> None:
    server = await serve(stall_before_the_head)
    pool = Pool()
    with pytest.raises(TimeoutError):
        await call(pool, server, total_s=0.2)
    with pytest.raises(TimeoutError):
        await call(pool, server, read_s=0.2)
    await asyncio.wait_for(server.closed_by_client.wait(), 5)  # the timed-out connections were closed
    assert pool.open_connections == 0
    await pool.aclose()


async def test_a_stream_times_out_on_silence_not_on_its_length(serve: Serve) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(CHUNKED_HEAD)
        for i in range(8):  # 8 frames 0.2 s apart: 1.6 s in all, never 1 s of silence
            writer.write(chunked(b"data: %d\n\n" % i)[:-5])
            await writer.drain()
            await asyncio.sleep(0.2)
        await reader.read()  # then silence
    server = await serve(handler)
    pool = Pool()
    resp = await pool.request("POST", server.url(), {}, b"{}", connect_s=5, read_s=1.0)
    lines = DataLines()
    resp.stream_into(lines)
    got = [await lines.next() for _ in range(8)]
    assert got == [b"%d" % i for i in range(8)]
    with pytest.raises(TimeoutError):
        await lines.next()
    resp.close()
    await pool.aclose()


async def test_waiting_for_a_pool_slot_counts_against_the_connect_timeout(
        serve: Serve) -> None:
    server = await serve(stall_before_the_head)
    pool = Pool(max_connections=1)
    held = asyncio.create_task(call(pool, server, total_s=5))
    await asyncio.sleep(0.05)
    with pytest.raises(TimeoutError):
        await call(pool, server, connect_s=0.2)
    held.cancel()
    await asyncio.gather(held, return_exceptions=True)
    assert pool.open_connections == 0
    await pool.aclose()


async def test_connections_are_capped_and_waiters_served(serve: Serve) -> None:
    live = 0
    most = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        nonlocal live, most
        live += 1
        most = max(most, live)
        try:
            while await server.read_request(reader) is not None:
                await asyncio.sleep(0.02)
                writer.write(answer(b"{}"))
                await writer.drain()
        finally:
            live -= 1
    server = await serve(handler)
    pool = Pool(max_connections=2)
    results = await asyncio.gather(*(call(pool, server, total_s=10) for _ in range(8)))
    assert results == [(200, b"{}")] * 8
    assert most <= 2 and server.connections == 2
    await pool.aclose()


async def test_refused_connection_is_a_connect_error() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    pool = Pool()
    with pytest.raises(ConnectError):
        await pool.request("POST", f"http://127.0.0.1:{port}/x", {}, b"", connect_s=2)
    assert pool.open_connections == 0


async def test_a_header_with_a_line_break_is_never_sent() -> None:
    pool = Pool()
    with pytest.raises(ProtocolError):
        await pool.request("POST", "http://127.0.0.1:9/x", {"authorization": "Bearer k\r\nx-evil: 1"}, b"",
                           connect_s=1)


# --- streams --------------------------------------------------------------------------------------
async def test_a_stream_arrives_as_it_is_sent_and_its_connection_is_reused(
        serve: Serve) -> None:
    first_seen = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while await server.read_request(reader) is not None:
            first_seen.clear()
            writer.write(CHUNKED_HEAD + chunked(b"data: 1\n\n")[:-5])
            await writer.drain()
            await asyncio.wait_for(first_seen.wait(), 5)  # the rest only once the client has the first
            writer.write(chunked(b"data: 2\n\ndata: [DONE]\n\n"))
            await writer.drain()
    server = await serve(handler)
    pool = Pool()
    for _ in range(2):
        resp = await pool.request("POST", server.url(), {}, b"{}", connect_s=5, read_s=5)
        lines = DataLines()
        resp.stream_into(lines)
        assert await lines.next() == b"1"
        first_seen.set()
        assert await lines.next() == b"2"
        assert await lines.next() == b"[DONE]"
        resp.release_at_end()
        # Pooled once the message ends (its terminator came in the same write here): waited for,
        # bounded, rather than slept on — the next request must find it idle.
        for _ in range(250):
            if pool.idle_connections == 1:
                break
            await asyncio.sleep(0.02)
        assert pool.idle_connections == pool.open_connections == 1
    assert server.connections == 1
    await pool.aclose()


async def test_closing_a_stream_midway_closes_its_connection(serve: Serve) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while await server.read_request(reader) is not None:
            writer.write(CHUNKED_HEAD)
            while True:  # an endless stream, until the client goes
                writer.write(chunked(b"data: more\n\n")[:-5])
                await writer.drain()
                await asyncio.sleep(0.01)
    server = await serve(handler)
    pool = Pool()
    resp = await pool.request("POST", server.url(), {}, b"{}", connect_s=5, read_s=5)
    lines = DataLines()
    resp.stream_into(lines)
    assert await lines.next() == b"more"
    resp.close()  # what the relay does when the client disconnects
    await asyncio.wait_for(server.closed_by_client.wait(), 5)
    assert pool.open_connections == 0  # never pooled
    await pool.aclose()


async def test_a_slow_consumer_pauses_reading_the_socket(serve: Serve) -> None:
    sent = 0
    frame = b"data: " + b"z" * 4000 + b"\n\n"
    total_frames = 8000  # 32 MB: far past the sink's high water and loopback's socket buffers (a few MB each way)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        nonlocal sent
        await server.read_request(reader)
        writer.write(CHUNKED_HEAD)
        for _ in range(total_frames):
            writer.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            await writer.drain()  # blocks while the client does not read
            sent += 1
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    server = await serve(handler)
    pool = Pool()
    resp = await pool.request("POST", server.url(), {}, b"{}", connect_s=5, read_s=10)
    lines = DataLines(high_water=64 << 10)
    resp.stream_into(lines)
    await asyncio.sleep(0.3)  # nobody consumes: the server must get stuck, the sink stay bounded
    assert sent < total_frames // 2  # 16 MB: more than both sockets' buffers and the sink hold
    assert lines._buffered < (64 << 10) + (256 << 10)  # the high water plus at most one socket read
    got = 0
    while await lines.next() is not None:
        got += 1
    assert got == total_frames and sent == total_frames
    resp.close()
    await pool.aclose()


class _CountingLines(DataLines):
    feeds = 0

    def feed(self, data: bytes) -> bool:
        self.feeds += 1
        return super().feed(data)


async def test_a_burst_of_chunks_in_one_read_is_fed_to_the_sink_at_once(serve: Serve) -> None:
    attached = asyncio.Event()
    frames = [b"data: {\"n\": %d}\n\n" % i for i in range(20)]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(CHUNKED_HEAD)
        await writer.drain()
        await attached.wait()
        # An engine writes each frame as its own HTTP chunk; a burst of them lands in one read.
        writer.write(b"".join(b"%x\r\n%s\r\n" % (len(f), f) for f in frames) + b"0\r\n\r\n")
        await writer.drain()
    server = await serve(handler)
    pool = Pool()
    resp = await pool.request("POST", server.url(), {}, b"{}", connect_s=5, read_s=10)
    lines = _CountingLines()
    resp.stream_into(lines)
    attached.set()
    got = []
    while (payload := await lines.next()) is not None:
        got.append(payload)
    assert got == [b'{"n": %d}' % i for i in range(20)]  # every payload, in order, then the end
    assert 1 <= lines.feeds < 5  # one feed per read, not one per chunk (20)
    resp.close()
    await pool.aclose()


# --- TLS ------------------------------------------------------------------------------------------
def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_https_with_a_trusted_certificate_and_refused_with_an_unknown_one(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    server = await Server(keep_answering).start(server_ctx)
    url = server.url(scheme="https", host="localhost")
    untrusting = Pool()  # ssl.create_default_context(): the system's CAs only
    with pytest.raises(ConnectError, match="SSL"):
        await untrusting.request("POST", url, {}, b"{}", connect_s=5)
    trusting = Pool(ssl_context=ssl.create_default_context(cafile=str(cert)))
    for _ in range(2):
        resp = await trusting.request("POST", url, {}, b"{}", connect_s=5, total_s=5)
        assert (resp.status, await resp.read()) == (200, b'{"echo": 2}')
    assert server.connections == 1  # the refused handshake never reached the handler; then one kept-alive connection
    await trusting.aclose()
    await server.stop()
