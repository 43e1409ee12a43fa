"""Models list, router status, health, readiness and Prometheus metrics.

The models list is OpenAI's shape, or Anthropic's when the request carries ``anthropic-version``
(what Anthropic's SDK sends), so ``client.models.list()`` works from either SDK.
"""

from __future__ import annotations

import time

import orjson
from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from router import errors, taxonomy
from router.api.http import JSON
from router.doors.anthropic_rendering import models_page
from router.services import Services

router = APIRouter()
_CREATED = int(time.time())


def _svc(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _model_names(services: Services) -> list[str]:
    policy = services.store.current.policy
    names = ["auto", *(f"auto:{m}" for m in taxonomy.MODES), *policy.routes]
    if policy.swarm.enabled:
        names.append(taxonomy.SWARM_ROUTE)
    names += [a for a in policy.listed_aliases if a not in names]
    return names


def _model_object(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": _CREATED, "owned_by": "model-router"}




@router.get("/v1/models")
async def list_models(request: Request) -> Response:
    services = _svc(request)
    services.auth.check_request(request.headers)
    names = _model_names(services)
    if "anthropic-version" in request.headers:  # Anthropic's page shape; everything fits on one page
        return Response(orjson.dumps(models_page(names)), media_type=JSON)
    data = [_model_object(n) for n in names]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type=JSON)


@router.get("/v1/models/{model_id:path}")
async def retrieve_model(request: Request, model_id: str) -> Response:
    services = _svc(request)
    services.auth.check_request(request.headers)
    if model_id not in _model_names(services):
        raise errors.ModelNotFound(f"The model '{model_id}' does not exist.", param="model")
    if "anthropic-version" in request.headers:
        return Response(orjson.dumps(models_page([model_id])["data"][0]), media_type=JSON)
    return Response(orjson.dumps(_model_object(model_id)), media_type=JSON)


@router.get("/v1/router/status")
async def router_status(request: Request) -> Response:
    services = _svc(request)
    services.auth.check_request(request.headers)
    loaded = services.store.current
    live = services.live
    routes = live.route_stats()
    backends = {}
    for name, backend in loaded.policy.backends.items():
        backends[name] = {
            "enabled": backend.enabled, "disabled_reason": loaded.disabled.get(name),
            "provider": backend.provider, "model": backend.model,
            "circuit": live.breaker(name).state, "inflight": live.inflight(name),
            "max_concurrency": backend.max_concurrency,
            "engine_queue": live.queue(name) if backend.metrics_url else None,
            "routes": {r: routes[r] for r in routes if r.startswith(name + ":")},
        }
    body = {"object": "router.status", "policy": {"name": loaded.policy.name, "version": loaded.policy.version,
                                                  "digest": loaded.digest, "source": loaded.source},
            "backends": backends, "demo": services.demo is not None,
            "last_reload": services.store.last_reload.as_dict() if services.store.last_reload else None}
    if services.demo is not None:  # lets `model-router eval` find the demo judge
        body["demo_upstreams"] = {name: services.demo.base_url(name) for name in services.demo.names}
    return Response(orjson.dumps(body), media_type=JSON)


@router.get("/healthz")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type=JSON)


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    services = getattr(request.app.state, "services", None)
    if services is None:
        return Response(b'{"status":"starting"}', status_code=503, media_type=JSON)
    policy = services.store.current.policy
    up = [n for n in policy.backends if policy.backends[n].enabled and services.live.breaker(n).state != "open"]
    if not up:
        return Response(orjson.dumps({"status": "unavailable", "reason": "every backend is disabled or open"}),
                        status_code=503, media_type=JSON)
    return Response(orjson.dumps({"status": "ready", "backends_up": up, "policy": policy.version}),
                    media_type=JSON)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(generate_latest(_svc(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)
