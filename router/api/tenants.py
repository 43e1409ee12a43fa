"""``GET /v1/router/tenants/me``: any key sees its own tenant, limits and what is left (issue 14)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from router import errors
from router.api.http import JSON
from router.services import Services
from router.tenants.enforce import meters_summary
from router.tenants.gate import TenantGate
from router.tenants.limits import KeyLimits
from router.tenants.model import PRIORITY_CLASSES

router = APIRouter()
_PRIORITY_NAMES = {v: k for k, v in PRIORITY_CLASSES.items()}


@router.get("/v1/router/tenants/me")
async def tenant_me(request: Request) -> Response:
    services: Services = request.app.state.services
    gate = services.tenants
    if not isinstance(gate, TenantGate):  # a deployment built without tenants
        raise errors.ModelNotFound("Tenants are not enabled in this deployment.")
    limits: KeyLimits = services.auth.identify_request(request.headers)
    tenant = gate.store.current.tenants.get(limits.tenant)
    readings = await gate.enforcer.peek(limits)

    def ceiling(c: object) -> dict[str, float | None] | None:
        return None if c is None else {"default": getattr(c, "default", None), "max": getattr(c, "max", None)}

    body = {
        "object": "router.tenant", "tenant": limits.tenant, "key_id": limits.key_id,
        "priority": _PRIORITY_NAMES.get(limits.priority, "normal"),
        "metadata": dict(tenant.metadata) if tenant else {},
        "limits": {
            "max_cost_usd": ceiling(limits.max_cost), "latency_budget_ms": ceiling(limits.latency_budget),
            "allowed_models": sorted(limits.allowed_models) if limits.allowed_models is not None else None,
            "allowed_routes": sorted(limits.allowed_routes) if limits.allowed_routes is not None else None,
            "allowed_modes": sorted(limits.allowed_modes) if limits.allowed_modes is not None else None,
            "swarm": limits.swarm.model_dump() if limits.swarm else None,
            "self_hosted_spend": "exempt" if limits.exempt_self_hosted else "counted",
        },
        "usage": meters_summary(readings) if readings is not None else None,
        "shared_state": gate.enforcer.state.name if readings is not None else "unavailable",
    }
    return Response(orjson.dumps(body), media_type=JSON)
