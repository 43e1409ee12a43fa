"""HTTP plumbing for the framework-routed handlers: the body limit and OpenAI-shaped error responses."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

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
