"""Every client protocol's front door, as one bare ASGI endpoint — the hot path.

It skips the framework's middleware, routing and dependency machinery (about a tenth of the
gateway's CPU per request when measured) and owns ``receive`` directly, so a client disconnect
cancels the work — the upstream call, a stream, or every swarm sub-agent — at once. What every
protocol shares happens here, once: auth → tenant → body (with its limit) → the door's handler
under the disconnect watch → JSON or SSE out; errors in the door's own shape, never a stack trace.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, MutableMapping
from typing import Any

from router import errors, sse
from router.doors.base import Door, Incoming, JsonReply
from router.server import DISCONNECT_WATCH, DisconnectWatch
from router.services import Services

log = logging.getLogger("router")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no")]


class ClientGone(Exception):
    """The client disconnected before the answer was complete."""


def _encode(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def send_json(send: Send, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    # With its length the body goes out as it is; without, the server frames it as one chunk plus
    # a terminating chunk (and the client has to parse both).
    head = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode("ascii"))]
    if headers:
        head += _encode(headers)
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise errors.RequestTooLarge(f"The request body is larger than the {limit}-byte limit.")
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise errors.RequestTooLarge(f"The request body is larger than the {limit}-byte limit.")
        parts.append(chunk)
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)


async def until_disconnect(receive: Receive) -> None:
    """Returns when the client disconnects (call only after the body has been read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(receive: Receive, work: Awaitable[Any], scope: Scope | None = None) -> Any:
    """Await ``work`` in this task; if the client goes away first, cancel it and raise ClientGone.

    Under ``router serve`` the protocol tells us by a plain call (``server.DisconnectWatch``, in
    the scope's extensions); under any other ASGI server, one watcher task parked in ``receive()``
    (not a second task for the work plus ``asyncio.wait``). This runs on every request, so it is
    kept to the least the event loop has to do.
    """
    current = asyncio.current_task()
    assert current is not None
    gone = False

    def left() -> None:
        nonlocal gone
        gone = True
        current.cancel()

    extensions = scope.get("extensions") if scope is not None else None
    watch: DisconnectWatch | None = extensions.get(DISCONNECT_WATCH) if extensions else None
    watcher: asyncio.Task[None] | None = None
    if watch is not None:
        watch.callback = left
        if watch.gone:  # already lost: as with the watcher task, the work starts and is cancelled at once
            watch.callback = None
            asyncio.get_running_loop().call_soon(left)
    else:
        async def watch_receive() -> None:
            await until_disconnect(receive)
            left()

        watcher = asyncio.get_running_loop().create_task(watch_receive())
    try:
        result = await work
    except asyncio.CancelledError:
        if not gone:
            raise  # cancelled from outside (e.g. shutdown): not ours to swallow
        current.uncancel()
        raise ClientGone from None
    finally:
        if watch is not None:
            watch.callback = None
        if watcher is not None:
            watcher.cancel()
    if gone:  # the client left just as the work finished: nobody to answer
        raise ClientGone
    return result


async def relay_sse(frames: AsyncGenerator[bytes, None], headers: dict[str, str], send: Send) -> None:
    """Send the frames as they come (run under ``unless_disconnected``: a disconnect cancels the
    generator, and so the upstream call)."""
    try:
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS + _encode(headers)})
        ended = False  # the end of the body rode on a frame marked ``sse.Last``: one write, not two
        async for frame in frames:
            if ended:
                raise RuntimeError("a stream yielded bytes after its sse.Last frame")
            ended = type(frame) is sse.Last
            await send({"type": "http.response.body", "body": frame, "more_body": not ended})
        if not ended:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except OSError:
        pass  # the client's socket broke mid-write: nobody left to tell
    finally:
        await frames.aclose()  # idempotent; runs the generator's cleanup if it was not finished


class _WrongMethod:
    def __init__(self, door: Door, allow: list[str]) -> None:
        self.api = door.api
        self.error_body = door.error_body
        self.allow = ", ".join(sorted(allow))  # RFC 9110: a 405 names the methods that are allowed

    async def handle(self, incoming: Incoming, services: Services) -> JsonReply:
        raise errors.MethodNotAllowed(f"{incoming.method} {incoming.path}: Method Not Allowed",
                                      headers={"allow": self.allow})


class FrontDoor:
    """Routes ``(method, path)`` to its protocol's door; exact paths first, then path prefixes."""

    def __init__(self, services: Callable[[], Services], doors: dict[tuple[str, str], Door],
                 prefixes: list[tuple[str, Door]] | None = None) -> None:
        self._services = services
        self.services: Services | None = None  # bound for the app's lifespan (``bind``): no look-up per request
        self._doors = doors
        self._prefixes = prefixes or []  # a door that checks the method itself (``/v1/responses/{id}``)
        allow: dict[str, list[str]] = {}
        for method, path in doors:
            allow.setdefault(path, []).append(method)
        self._by_path = {path: _WrongMethod(door, allow[path]) for (_, path), door in doors.items()}

    def bind(self, services: Services | None) -> None:
        """The services of the running app (None once it stopped: back to asking ``services()``)."""
        self.services = services

    def door_for(self, method: str, path: str) -> Door | None:
        door = self._doors.get((method, path))
        if door is not None:
            return door
        for prefix, candidate in self._prefixes:
            if path.startswith(prefix):
                return candidate
        return self._by_path.get(path)  # a door path with the wrong method: 405 in the door's shape

    async def __call__(self, scope: Scope, receive: Receive, send: Send, door: Door) -> None:
        arrived = time.perf_counter()
        try:
            await self._handle(scope, receive, send, door, arrived)
        except errors.RouterError as exc:
            await send_json(send, exc.status, door.error_body(exc), exc.headers)
        except ClientGone:
            return  # nobody is listening; the work was cancelled
        except Exception:  # never a stack trace to the client
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            self._services().metrics.requests.labels("none", "none", "none", "internal_error", door.api).inc()
            err = errors.RouterError("The gateway hit an internal error; it has been logged.")
            await send_json(send, err.status, door.error_body(err))

    async def _handle(self, scope: Scope, receive: Receive, send: Send, door: Door, arrived: float) -> None:
        services = self.services or self._services()
        # One pass over the raw headers; later look-ups are dict hits (names arrive lower-cased).
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        services.auth.check_request(headers)
        tenant = services.tenants.resolve(headers)
        body = await read_body(receive, headers, services.settings.max_body_bytes)
        incoming = Incoming(scope["method"], scope["path"], headers, body, arrived, tenant)
        reply = await unless_disconnected(receive, self._answer(door, incoming, services, send), scope)
        if reply is not None:
            await send_json(send, reply.status, reply.body, reply.headers)

    @staticmethod
    async def _answer(door: Door, incoming: Incoming, services: Services, send: Send) -> JsonReply | None:
        """The door's answer: a JSON reply, to send; or a stream, sent here — under the same
        disconnect watch as the work before it (one watcher task per request, not two)."""
        reply = await door.handle(incoming, services)
        if isinstance(reply, JsonReply):
            return reply
        await relay_sse(reply.frames, reply.headers, send)
        return None
