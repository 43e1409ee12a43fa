"""The FastAPI application: thin handlers over ``Services``; errors always in OpenAI's shape."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from router import errors
from router.api import chat, info
from router.api.chat_endpoint import ChatEndpoint, Receive, Scope, Send
from router.api.http import JSON, error_response
from router.services import Services
from router.settings import Settings

log = logging.getLogger("router")
CHAT_PATH = "/v1/chat/completions"


class RouterApp(FastAPI):
    """FastAPI, except that the hot path (chat completions) goes straight to its ASGI endpoint."""

    chat_endpoint: ChatEndpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == CHAT_PATH and scope["method"] == "POST":
            await self.chat_endpoint(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = services or Services.build(settings)
        app.state.services = svc
        await svc.start()
        try:
            yield
        finally:
            await svc.stop()

    app = RouterApp(title="model-router", version="0.1.0", lifespan=lifespan,
                    description="OpenAI-compatible gateway that routes each request to the right model and mode.")
    app.chat_endpoint = ChatEndpoint(lambda: app.state.services)

    @app.exception_handler(errors.RouterError)
    async def _router_error(request: Request, exc: errors.RouterError) -> Response:
        return error_response(exc)

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
        return Response(err.body_bytes(), status_code=exc.status_code, media_type=JSON)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(errors.RouterError("The gateway hit an internal error; it has been logged."))

    app.include_router(chat.router)
    app.include_router(info.router)
    return app
