"""The gateway's listener takes every waiting connection on one turn of the event loop.

libuv (under uvloop's own server) accepts one connection per turn since libuv#3696: a burst of N
new connections on a busy loop was taken over N turns — ~0.5 s for 64 at ~8 ms a turn, the stream
p99 at c=64 in benchmarks/README.md. These tests count turns of the loop, not milliseconds: how
long a turn takes is the machine's business, how many turns a burst needs is ours.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import uvicorn
import uvloop

from router.accept import Acceptor
from router.server import ConnectionLimits, Drain, GatewayServer, GuardedProtocol, guarded_protocol

BURST = 64


async def _hello(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                 send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})


async def _started(http: type[GuardedProtocol]) -> GatewayServer:
    """A ``GatewayServer`` as ``router serve`` runs it (uvicorn's ``_serve`` up to its main loop)."""
    config = uvicorn.Config(_hello, host="127.0.0.1", port=0, http=http, lifespan="off", log_level="warning",
                            timeout_graceful_shutdown=5)
    config.load()
    server = GatewayServer(config, Drain())
    server.lifespan = config.lifespan_class(config)
    await server.startup()
    return server


def _port(server: GatewayServer) -> int:
    port: int = server.servers[0].sockets[0].getsockname()[1]
    return port


async def _turns_until(condition: Callable[[], bool], limit: int) -> int:
    """Turns of the loop until ``condition`` holds: ``sleep(0)`` resumes this task on the next turn,
    after the loop has polled its sockets once."""
    turns = 0
    while not condition() and turns < limit:
        await asyncio.sleep(0)
        turns += 1
    return turns


@pytest.fixture(params=["uvloop", "asyncio"])
def run(request: pytest.FixtureRequest) -> Iterator[Callable[[Awaitable[Any]], Any]]:
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        yield runner.run


def test_a_burst_of_connections_is_served_within_a_few_turns_of_the_loop(run: Any) -> None:
    http = guarded_protocol(ConnectionLimits())

    async def scenario() -> int:
        server = await _started(http)
        clients: list[socket.socket] = []
        try:
            # Blocking connects from the loop's own thread: the kernel completes each handshake and
            # queues it while the loop cannot run, so all of them wait at once — a burst on a busy loop.
            clients = [socket.create_connection(("127.0.0.1", _port(server))) for _ in range(BURST)]
            turns = await _turns_until(lambda: len(http.guard.open) >= BURST, limit=4 * BURST)
            assert len(http.guard.open) == BURST  # each one reached the protocol (connection_made)
            # And served: a request on the last connection of the burst.
            loop, last = asyncio.get_running_loop(), clients[-1]
            last.setblocking(False)
            await loop.sock_sendall(last, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            answer = b""
            while not answer.endswith(b"hello"):
                chunk = await loop.sock_recv(last, 4096)
                assert chunk, f"the connection closed after {answer!r}"
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200")
            return turns
        finally:
            for client in clients:
                client.close()
            await server.shutdown()

    turns = run(scenario())
    # accept (1) → attach the transport (2) → connection_made (3); uvloop's own server took BURST + 1.
    assert turns <= 4, f"{BURST} queued connections needed {turns} turns of the loop to reach the protocol"


def test_after_shutdown_nothing_is_accepted_and_the_listener_is_closed(run: Any) -> None:
    http = guarded_protocol(ConnectionLimits())

    async def scenario() -> None:
        server = await _started(http)
        port = _port(server)
        await server.shutdown()
        assert not server.servers[0].sockets
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)

    run(scenario())


def test_out_of_descriptors_pauses_accepting_then_takes_the_queue_when_they_are_back(run: Any) -> None:
    made: list[asyncio.BaseTransport] = []

    class Recorder(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            made.append(transport)

    async def scenario() -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        acceptor = Acceptor(asyncio.get_running_loop(), listener, Recorder, max_per_wakeup=64, retry_after_s=0.0)
        acceptor.start()
        clients = [socket.create_connection(listener.getsockname()) for _ in range(8)]
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        lowest_free = os.dup(0)  # a new descriptor takes the lowest free number: with the limit there,
        os.close(lowest_free)    # accept() has none left (EMFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
        try:
            await _turns_until(lambda: acceptor.failures >= 3, limit=200)
            assert acceptor.failures >= 3 and acceptor.accepted == 0 and not made  # paused and retried, not raised
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        await _turns_until(lambda: len(made) == len(clients), limit=200)
        assert len(made) == len(clients) and acceptor.is_serving()
        for transport in made:
            transport.close()
        for client in clients:
            client.close()
        acceptor.close()
        await acceptor.wait_closed()

    run(scenario())
