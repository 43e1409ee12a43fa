"""Which tenant a request belongs to: the hook point every front door calls, once, after auth.

Single-tenant for now: every request belongs to no tenant (``None``). A multi-tenant resolver
(keys → tenants, their budgets and policies) replaces ``SingleTenant`` in ``Services``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class TenantResolver(Protocol):
    def resolve(self, headers: Mapping[str, str]) -> str | None: ...


class SingleTenant:
    def resolve(self, headers: Mapping[str, str]) -> str | None:
        return None
