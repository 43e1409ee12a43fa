"""Tenant-labelled metrics with a bounded ``tenant`` label.

Only names from the tenants file (and ``default``) become label values, at most ``cap`` of them
(alphabetically first); anything else is ``other``. A key id, a key or a hash is never a label.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from router.observability.metrics import RouterMetrics
from router.tenants.state import Reading

OTHER = "other"
GAUGE_EVERY_S = 1.0


class TenantMetrics:
    def __init__(self, metrics: RouterMetrics, names: Iterable[str] = (), *, cap: int = 100) -> None:
        self.m = metrics
        self.cap = cap
        self._names: frozenset[str] = frozenset()
        self.state_failures = metrics.tenant_state_failures
        self._gauges_due: dict[str, float] = {}
        self.set_names(names)

    def set_names(self, names: Iterable[str]) -> None:
        self._names = frozenset(sorted(set(names))[: self.cap])
        # Labelled children by tenant name (keys only ever name tenants of the file, so these stay
        # as small as the file), rebuilt on reload since a name's label may change.
        self._requests: dict[tuple[str, str], Any] = {}
        self._spend: dict[str, Any] = {}

    def label(self, tenant: str) -> str:
        return tenant if tenant in self._names else OTHER

    def admitted(self, tenant: str) -> None:
        """Counted at the end of the request (with its status); nothing to do at admission."""

    def finished(self, tenant: str, status: str) -> None:
        child = self._requests.get((tenant, status))
        if child is None:  # one labels() look-up per tenant and status, then the child itself
            child = self._requests[(tenant, status)] = self.m.tenant_requests.labels(self.label(tenant), status)
        child.inc()

    def rejected(self, tenant: str, reason: str) -> None:
        label = self.label(tenant)
        self.m.tenant_rejections.labels(label, reason).inc()
        self.m.tenant_requests.labels(label, "rejected").inc()

    def spent(self, tenant: str, usd: float) -> None:
        if usd > 0:
            child = self._spend.get(tenant)
            if child is None:
                child = self._spend[tenant] = self.m.tenant_spend.labels(self.label(tenant))
            child.inc(usd)

    def readings(self, tenant: str, readings: list[Reading]) -> None:
        """Budget gauges, refreshed at most every ``GAUGE_EVERY_S`` per tenant (they move slowly)."""
        now = time.monotonic()
        if now < self._gauges_due.get(tenant, 0.0):
            return
        self._gauges_due[tenant] = now + GAUGE_EVERY_S
        label = self.label(tenant)
        for r in readings:
            if r.meter.scope != "t":
                continue
            for period, limit, spent, reserved in (("day", r.meter.daily_usd, r.daily_spent, r.daily_reserved),
                                                   ("month", r.meter.monthly_usd, r.monthly_spent,
                                                    r.monthly_reserved)):
                if limit is not None:
                    self.m.tenant_budget.labels(label, period).set(limit)
                    self.m.tenant_budget_remaining.labels(label, period).set(limit - spent - reserved)

    def queue_wait(self, tenant: str, outcome: str, seconds: float) -> None:
        self.m.admission_queue_wait.labels(self.label(tenant), outcome).observe(seconds)

    def queue_depth(self, depth: int) -> None:
        self.m.admission_queue_depth.set(depth)
