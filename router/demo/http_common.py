"""HTTP pieces every demo server shares: JSON replies, the `/_demo/*` control routes, auth,
failure injection, pacing, and a stream writer that notices when the client has gone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from router.demo.server_state import ClientGone, DemoServerState

STATE_KEY = web.AppKey("demo_state", DemoServerState)
ErrorRenderer = Callable[[int, str], web.Response]

# Request headers recorded in `last_requests`; credentials are recorded as present/absent only.
_SECRET_HEADERS = ("authorization", "x-api-key")
_RECORDED_HEADERS = ("content-type", "user-agent", "anthropic-version", "anthropic-beta", "traceparent",
                     "x-request-id")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, headers=headers,
                        content_type="application/json")


def state_of(request: web.Request) -> DemoServerState:
    return request.app[STATE_KEY]


def record_request(state: DemoServerState, request: web.Request, body: Any) -> None:
    headers: dict[str, Any] = {name: name in request.headers for name in _SECRET_HEADERS}
    for name, value in request.headers.items():
        low = name.lower()
        if low in _RECORDED_HEADERS or low.startswith("x-router-"):
            headers[low] = value
    state.stats.last_requests.append({"path": request.path, "headers": headers, "body": body})


def check_auth(state: DemoServerState, request: web.Request) -> bool:
    expected = state.spec.api_key
    if expected is None:
        return True
    bearer = request.headers.get("authorization", "")
    return bearer == f"Bearer {expected}" or request.headers.get("x-api-key") == expected


async def inject_failure(state: DemoServerState, render_error: ErrorRenderer) -> web.Response | None:
    """An injected failure response, or None to answer normally. Timeouts hang, then answer."""
    behavior, gate = state.behavior, state.gate
    if gate.fires("timeout", behavior.timeout_rate):
        state.stats.injected["timeout"] += 1
        await asyncio.sleep(behavior.hang_s)  # cancelled when the client gives up
    if gate.fires("rate_limit", behavior.rate_limit_rate):
        state.stats.injected["rate_limit"] += 1
        response = render_error(429, "Demo upstream: rate limit reached, retry later.")
        response.headers["retry-after"] = f"{behavior.retry_after_s:g}"
        return response
    if gate.fires("error", behavior.error_rate):
        state.stats.injected["error"] += 1
        return render_error(behavior.error_status, "Demo upstream: injected failure.")
    return None


class Pacer:
    """Sleeps so token i appears at start + ttft + i / tokens_per_s (no sleep at all when both are 0)."""

    def __init__(self, state: DemoServerState, start: float) -> None:
        self.ttft_s = state.behavior.ttft_ms / 1000.0
        self.tokens_per_s = state.behavior.tokens_per_s
        self.start = start
        self.paced = self.ttft_s > 0 or self.tokens_per_s > 0

    def due(self, token_index: int) -> float:
        delay = self.ttft_s + (token_index / self.tokens_per_s if self.tokens_per_s > 0 else 0.0)
        return self.start + delay

    async def wait_for_token(self, token_index: int) -> None:
        if self.paced:
            remaining = self.due(token_index) - time.monotonic()
            if remaining > 0:
                await asyncio.sleep(remaining)


async def start_stream(response: web.StreamResponse, request: web.Request) -> None:
    """Send the stream's headers; a client that is already gone is ``ClientGone``, not an error."""
    try:
        await response.prepare(request)
    except (ConnectionError, RuntimeError) as exc:
        raise ClientGone(str(exc)) from exc


class EventSink:
    """Writes stream frames; buffers them when unpaced so a fast stream costs one write."""

    def __init__(self, response: web.StreamResponse, *, buffered: bool) -> None:
        self.response = response
        self.buffered = buffered
        self._buffer: list[bytes] = []

    async def send(self, frame: bytes) -> None:
        if self.buffered:
            self._buffer.append(frame)
        else:
            await self._write(frame)

    async def flush(self) -> None:
        if self._buffer:
            data, self._buffer = b"".join(self._buffer), []
            await self._write(data)

    async def finish(self) -> None:
        """Flush what is buffered and end the response (the client may be gone by now)."""
        await self.flush()
        try:
            await self.response.write_eof()
        except (ConnectionError, RuntimeError) as exc:
            raise ClientGone(str(exc)) from exc

    async def _write(self, data: bytes) -> None:
        try:
            await self.response.write(data)
        except (ConnectionError, RuntimeError) as exc:  # aiohttp raises both on a closed transport
            raise ClientGone(str(exc)) from exc


async def serve_planned(state: DemoServerState, mode: str, role: str, render_error: ErrorRenderer,
                        answer: Callable[[float], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Count the request, hold it the way an engine would (failure injection, then a slot), answer.

    ``answer`` gets the moment the request got its engine slot (the start of its time to first token).
    """
    state.stats.by_mode[mode] += 1
    state.stats.by_role[role] += 1
    try:
        async with state.tracked():
            failure = await inject_failure(state, render_error)
            if failure is not None:
                return failure
            async with state.engine_slot() as start:
                return await answer(start)
    except ClientGone:
        return web.Response(status=499)  # never reaches the client: the connection is gone


async def abort_stream(request: web.Request, sink: EventSink) -> None:
    """Sends what is buffered, then drops the connection without ending the stream."""
    await sink.flush()
    state_of(request).stats.injected["abort"] += 1
    if request.transport is not None:
        request.transport.abort()


async def read_json(request: web.Request) -> tuple[Any, str | None]:
    """The parsed body, or (None, error message)."""
    raw = await request.read()
    try:
        return orjson.loads(raw), None
    except orjson.JSONDecodeError as exc:
        return None, f"Request body is not valid JSON: {exc}"


def add_control_routes(app: web.Application) -> None:
    async def behavior(request: web.Request) -> web.Response:
        state = state_of(request)
        changes, error = await read_json(request)
        if error or not isinstance(changes, dict):
            return json_response({"error": error or "body must be a JSON object"}, status=400)
        try:
            new = state.update_behavior(changes)
        except (ValueError, TypeError) as exc:
            return json_response({"error": str(exc)}, status=400)
        return json_response(new.to_dict())

    async def reset(request: web.Request) -> web.Response:
        state = state_of(request)
        state.reset()
        return json_response(state.behavior.to_dict())

    async def stats(request: web.Request) -> web.Response:
        return json_response(state_of(request).stats.snapshot())

    async def health(request: web.Request) -> web.Response:
        return web.Response(status=200)

    app.router.add_post("/_demo/behavior", behavior)
    app.router.add_get("/_demo/behavior", _current_behavior)
    app.router.add_post("/_demo/reset", reset)
    app.router.add_get("/_demo/stats", stats)
    app.router.add_get("/health", health)


async def _current_behavior(request: web.Request) -> web.Response:
    return json_response(state_of(request).behavior.to_dict())
