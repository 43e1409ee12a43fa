"""``POST /v1/chat/completions`` and the dry run ``POST /v1/route``: thin handlers."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from router.api import http as web
from router.engine.explain import explain_decision
from router.protocol import parse_json_body
from router.services import Services

router = APIRouter()

_CHAT_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["model", "messages"],
    "properties": {"model": {"type": "string", "example": "auto"},
                   "messages": {"type": "array", "items": {"type": "object"}},
                   "stream": {"type": "boolean"},
                   "router": {"type": "object", "properties": {
                       "max_cost_usd": {"type": "number"}, "latency_budget_ms": {"type": "number"},
                       "mode": {"type": "string"}, "task_type": {"type": "string"}}}}}}}}}


async def _parsed(request: Request, services: Services) -> dict[str, Any]:
    services.auth.check(request.headers.get("authorization"))
    raw = await web.read_body(request, services.settings.max_body_bytes)
    return parse_json_body(raw)


class _ChatResponse(Response):
    """Hands the exchange to the ASGI chat endpoint (normally reached directly, see app.RouterApp)."""

    def __init__(self, request: Request) -> None:
        self._endpoint = request.app.chat_endpoint

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._endpoint(scope, receive, send)


@router.post("/v1/chat/completions", openapi_extra=_CHAT_BODY)
async def chat_completions(request: Request) -> Response:
    return _ChatResponse(request)


@router.post("/v1/route", openapi_extra=_CHAT_BODY)
async def route_dry_run(request: Request) -> Response:
    services: Services = request.app.state.services
    body = await _parsed(request, services)
    routed = services.serving.prepare(body, request.headers, dry_run=True)
    return Response(orjson.dumps(explain_decision(routed)), media_type=web.JSON)
