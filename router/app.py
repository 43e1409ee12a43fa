"""The ASGI application: every client protocol through one front door; the rest through FastAPI.

``RouterApp`` hands the door paths (chat completions, and each protocol added beside it) straight
to ``FrontDoor`` — no framework middleware on the hot path — and everything else (models, status,
health, metrics, the dry run) to FastAPI's thin handlers. Errors are always in the protocol's shape.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from router import errors
from router.api import dry_run, feedback, info, tenants
from router.api.front_door import FrontDoor, Receive, Scope, Send
from router.api.http import JSON, error_response
from router.api.openapi import add_door_operations
from router.doors import anthropic_messages
from router.doors.base import Door
from router.doors.chat_completions import ChatCompletionsDoor
from router.doors.messages_door import MessagesDoor
from router.doors.responses_door import RESPONSE_PREFIX, RESPONSES_PATH, ResponsesDoor
from router.server import Drain, refuse_repeated_header
from router.services import Services
from router.settings import Settings

log = logging.getLogger("router")


def front_door(services: Callable[[], Services]) -> tuple[FrontDoor, ResponsesDoor]:
    """The front door with every protocol's door: (method, path) first, then path prefixes."""
    messages, responses = MessagesDoor(), ResponsesDoor()
    doors: dict[tuple[str, str], Door] = {
        ("POST", "/v1/chat/completions"): ChatCompletionsDoor(),
        ("POST", "/v1/messages"): messages, ("POST", "/v1/messages/count_tokens"): messages,
        ("POST", RESPONSES_PATH): responses}
    return FrontDoor(services, doors, prefixes=[(RESPONSE_PREFIX, responses)]), responses


def _error_body(request: Request, exc: errors.RouterError) -> bytes:
    """OpenAI's error shape, or Anthropic's for a client that speaks it (``anthropic-version``)."""
    if "anthropic-version" in request.headers:
        return anthropic_messages.error_body(exc.status, exc.message)
    return exc.body_bytes()


class RouterApp(FastAPI):
    """FastAPI, except that the front doors (the hot path) go straight to their ASGI endpoint."""

    front_door: FrontDoor
    drain: Drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if await refuse_repeated_header(scope, send):
                return  # one reading of Authorization (and the like) for every endpoint
            door = self.front_door.door_for(scope["method"], scope["path"])
            if door is not None:
                # Under the drain: a shutdown ends it in its protocol's shape.
                await self.drain.serve(self.front_door, scope, receive, send, door)
                return
        await super().__call__(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = add_door_operations(super().openapi())
        return self.openapi_schema


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = services or Services.build(settings)
        app.state.services = svc
        await svc.start()
        assert isinstance(app, RouterApp)
        app.front_door.bind(svc)
        try:
            yield
        finally:
            app.front_door.bind(None)
            await responses.aclose()  # the response store (a Redis connection pool, if any)
            await svc.stop()

    app = RouterApp(title="model-router", version="0.1.0", lifespan=lifespan,
                    description="OpenAI-compatible gateway that routes each request to the right model and mode.")
    app.router.redirect_slashes = False  # its 307 built Location from the Host header: a 404 instead
    app.front_door, responses = front_door(lambda: app.state.services)
    app.drain = Drain()

    @app.exception_handler(errors.RouterError)
    async def _router_error(request: Request, exc: errors.RouterError) -> Response:
        return Response(_error_body(request, exc), status_code=exc.status, media_type=JSON, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        return error_response(errors.InvalidRequest(f"Invalid value for '{param}': {first.get('msg')}", param=param))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        cls = {404: errors.ModelNotFound, 405: errors.InvalidRequest}.get(exc.status_code, errors.InvalidRequest)
        err = cls(f"{request.method} {request.url.path}: {exc.detail}")
        err.instance_code = "not_found" if exc.status_code == 404 else None
        # exc.headers carries 405's Allow (RFC 9110 requires it).
        return Response(_error_body(request, err), status_code=exc.status_code, media_type=JSON, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(errors.RouterError("The gateway hit an internal error; it has been logged."))

    app.include_router(dry_run.router)
    app.include_router(info.router)
    app.include_router(feedback.router)  # POST /v1/feedback (the tuning loop)
    app.include_router(tenants.router)  # hook: GET /v1/router/tenants/me (issue 14)
    return app
