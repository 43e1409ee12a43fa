"""HTTP plumbing shared by the handlers: body limits, disconnect handling, error and SSE responses."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from starlette.responses import Response, StreamingResponse

from router import errors

JSON = "application/json"


def error_response(exc: errors.RouterError) -> Response:
    return Response(exc.body_bytes(), status_code=exc.status, media_type=JSON, headers=exc.headers)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise errors.RequestTooLarge(f"The request body is larger than the {limit}-byte limit.")
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise errors.RequestTooLarge(f"The request body is larger than the {limit}-byte limit.")
        parts.append(part)
    return b"".join(parts)


async def until_disconnect(request: Request) -> None:
    """Returns when the client disconnects (the body has been read already)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def unless_disconnected(request: Request, work: Any) -> Any:
    """Run ``work``; if the client goes away first, cancel it (which closes the upstream call)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(until_disconnect(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        watcher.cancel()
        raise
    if task in done:
        watcher.cancel()
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, errors.RouterError):
        await task
    return Response(status_code=499)


def streaming_response(frames: AsyncIterator[bytes], headers: dict[str, str]) -> StreamingResponse:
    headers = {**headers, "cache-control": "no-cache", "x-accel-buffering": "no"}
    return StreamingResponse(frames, media_type="text/event-stream", headers=headers)
