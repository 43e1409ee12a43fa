"""``POST /v1/route``: the dry run — a chat completions body classified and decided, nothing sent upstream."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from router.api import http as web
from router.api.openapi import CHAT_BODY
from router.engine.explain import explain_decision
from router.protocol import parse_json_body
from router.services import Services
from router.swarm.preview import add_subtask_routes

router = APIRouter()


@router.post("/v1/route", openapi_extra={"requestBody": CHAT_BODY})
async def route_dry_run(request: Request) -> Response:
    services: Services = request.app.state.services
    services.auth.check_request(request.headers)
    body = parse_json_body(await web.read_body(request, services.settings.max_body_bytes))
    routed = services.pipeline.prepare(body, request.headers, dry_run=True)
    explained = explain_decision(routed)
    add_subtask_routes(explained, routed, services.pipeline.classifier, services.live)  # swarm: route per subtask
    return Response(orjson.dumps(explained), media_type=web.JSON)
