"""Which tenant a request belongs to: the hook point every front door calls, once, after auth.

``SingleTenant``: every request belongs to no tenant (``None``). ``router.tenants.gate.TenantGate``
(keys → tenants, their budgets and limits) replaces it in ``Services``; it answers a ``Tenant``: the
tenant's name (what logs and metric labels show) carrying the key's limits for the pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class Tenant(str):
    """A tenant's name, with the calling key's limits (``router.tenants.limits.KeyLimits``) attached.

    A ``str`` so that everything that records who sent a request (the access log, the decision
    log, spans) keeps working with the name alone; the pipeline reads ``limits``.
    """

    limits: Any

    def __new__(cls, name: str, limits: Any = None) -> Tenant:
        obj = super().__new__(cls, name)
        obj.limits = limits
        return obj


class TenantResolver(Protocol):
    def resolve(self, headers: Mapping[str, str]) -> str | None: ...


class SingleTenant:
    def resolve(self, headers: Mapping[str, str]) -> str | None:
        return None
