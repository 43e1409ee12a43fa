"""The gateway's listening socket, drained of every waiting connection each time it is readable.

uvloop's own server hands the listening socket to libuv, and libuv (since libuv/libuv#3696, "unix:
don't accept() connections in a loop", July 2022) accepts exactly one connection per readiness event and
relies on level-triggered polling to hear of the next one on the next turn of the loop. On an idle
loop a turn is microseconds; on a busy one (c=64 streams: ~10 ms of callbacks per turn) a burst of
64 new connections waits in the kernel's accept queue and is taken one per turn — the last one ~0.5 s
later, each with a request already written. That was the gateway's stream p99 at c=64
(benchmarks/README.md, "Streams"). asyncio's own server accepts up to ``backlog`` per wakeup.

``Acceptor`` does what asyncio does on uvloop's loop: it watches the socket with ``add_reader``,
accepts until the queue is empty (``EAGAIN``), and hands each socket to
``loop.connect_accepted_socket`` — uvloop's C transport from there on, so requests cost the same.
It has the part of ``asyncio.Server``'s shape that uvicorn uses (``close``, ``wait_closed``,
``sockets``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

log = logging.getLogger("router")

# accept() failing (out of descriptors: EMFILE, ENFILE; or kernel memory): stop accepting for a
# moment instead of spinning on a readable socket we cannot drain; the connections wait in the
# kernel's queue (asyncio's server does the same, for the same time).
ACCEPT_RETRY_S = 1.0


class Acceptor:
    """Accepts connections on one listening socket for ``protocol_factory``, every waiting one per wakeup."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 protocol_factory: Callable[[], asyncio.Protocol], *, max_per_wakeup: int,
                 retry_after_s: float = ACCEPT_RETRY_S) -> None:
        self._loop = loop
        self._sock = sock
        self._protocol_factory = protocol_factory
        # A bound on one wakeup's work (asyncio's is the backlog): the rest is taken on the next turn.
        self._max_per_wakeup = max(1, max_per_wakeup)
        self._retry_after_s = retry_after_s
        self._attaching: set[asyncio.Task[None]] = set()
        self._serving = False
        self.accepted = 0
        self.failures = 0  # accept() errors other than "nothing waiting" (each one pauses accepting)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return (self._sock,) if self._sock.fileno() != -1 else ()

    def start(self) -> None:
        self._sock.setblocking(False)
        self._serving = True
        self._loop.add_reader(self._sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        for _ in range(self._max_per_wakeup):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return  # drained: the next connection makes the socket readable again
            except ConnectionAbortedError:
                continue  # the client gave up while queued
            except OSError as exc:  # EMFILE and kin; anything else would repeat on every turn too
                self.failures += 1
                log.warning("accept() failed (%s); pausing new connections for %g s", exc, self._retry_after_s)
                self._loop.remove_reader(self._sock.fileno())
                self._loop.call_later(self._retry_after_s, self._resume)
                return
            self.accepted += 1
            conn.setblocking(False)
            task = self._loop.create_task(self._attach(conn))
            self._attaching.add(task)
            task.add_done_callback(self._attaching.discard)

    def _resume(self) -> None:
        if self._serving:
            self._loop.add_reader(self._sock.fileno(), self._on_readable)

    async def _attach(self, conn: socket.socket) -> None:
        if not self._serving:  # closed between accept() and this turn: the client sees a reset
            conn.close()
            return
        try:
            await self._loop.connect_accepted_socket(self._protocol_factory, conn)
        except OSError as exc:  # e.g. reset before it was attached: nothing to answer
            log.debug("an accepted connection failed before it was served: %s", exc)
            conn.close()
        except Exception:  # the protocol could not be built: this connection only, the server goes on
            log.exception("an accepted connection could not be attached")
            conn.close()

    # asyncio.Server's shape, the part uvicorn's shutdown calls.
    def close(self) -> None:
        if self._serving:
            self._serving = False
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()

    async def wait_closed(self) -> None:
        if self._attaching:
            await asyncio.gather(*self._attaching, return_exceptions=True)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    def __repr__(self) -> str:
        return f"<Acceptor {self.sockets[0].getsockname() if self.sockets else 'closed'}>"
