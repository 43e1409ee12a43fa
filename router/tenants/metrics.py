"""Tenant-labelled metrics with a bounded ``tenant`` label.

Only names from the tenants file (and ``default``) become label values, at most ``cap`` of them
(alphabetically first); anything else is ``other``. A key id, a key or a hash is never a label.

Per request the path only adds to plain dictionaries — finished requests and spend per tenant,
and the latest readings of its budgets — and the Prometheus series are brought up to date when the
registry is read (``RouterMetrics.before_tenants``, run first by every scrape). That keeps label
look-ups, counter locks and gauge writes off the request path; a scrape sees every request that
finished before it. Refusals (rare) are counted at once.
"""

from __future__ import annotations

from collections.abc import Iterable

from router.observability.metrics import RouterMetrics
from router.tenants.state import Reading

OTHER = "other"


class TenantMetrics:
    def __init__(self, metrics: RouterMetrics, names: Iterable[str] = (), *, cap: int = 100) -> None:
        self.m = metrics
        self.cap = cap
        self._names: frozenset[str] = frozenset()
        self.state_failures = metrics.tenant_state_failures
        # Totals since start, written by the request path only; the flush reads them and sends the
        # difference from what it sent last time (so a flush from another thread loses nothing).
        self._finished: dict[tuple[str, str], int] = {}
        self._spend: dict[str, float] = {}
        self._latest: dict[str, list[Reading]] = {}  # tenant -> its last admission's readings
        self._sent_finished: dict[tuple[str, str], int] = {}
        self._sent_spend: dict[str, float] = {}
        self.set_names(names)
        metrics.before_tenants.add(self.flush)

    def set_names(self, names: Iterable[str]) -> None:
        if self._names:
            self.flush()  # what was counted under the old names goes out under them
        self._names = frozenset(sorted(set(names))[: self.cap])

    def label(self, tenant: str) -> str:
        return tenant if tenant in self._names else OTHER

    # --- the request path: plain dictionary updates ------------------------------------------------
    def finished(self, tenant: str, status: str, usd: float) -> None:
        """A request is over: one more of ``status``, and ``usd`` charged to the tenant's budget."""
        key = (tenant, status)
        counts = self._finished
        counts[key] = counts.get(key, 0) + 1
        if usd > 0:
            spend = self._spend
            spend[tenant] = spend.get(tenant, 0.0) + usd

    def readings(self, tenant: str, readings: list[Reading]) -> None:
        """The budget gauges' source: the tenant's counters as its last admission saw them."""
        self._latest[tenant] = readings

    def rejected(self, tenant: str, reason: str) -> None:
        label = self.label(tenant)
        self.m.tenant_rejections.labels(label, reason).inc()
        self.m.tenant_requests.labels(label, "rejected").inc()

    def queue_wait(self, tenant: str, outcome: str, seconds: float) -> None:
        self.m.admission_queue_wait.labels(self.label(tenant), outcome).observe(seconds)

    def queue_depth(self, depth: int) -> None:
        self.m.admission_queue_depth.set(depth)

    # --- when the registry is read -----------------------------------------------------------------
    def flush(self) -> None:
        m = self.m
        sent = self._sent_finished
        for key, total in list(self._finished.items()):
            if total != sent.get(key, 0):
                m.tenant_requests.labels(self.label(key[0]), key[1]).inc(total - sent.get(key, 0))
                sent[key] = total
        sent_usd = self._sent_spend
        for tenant, usd in list(self._spend.items()):
            if usd != sent_usd.get(tenant, 0.0):
                m.tenant_spend.labels(self.label(tenant)).inc(max(0.0, usd - sent_usd.get(tenant, 0.0)))
                sent_usd[tenant] = usd
        for tenant, readings in list(self._latest.items()):
            label = self.label(tenant)
            for r in readings:
                if r.meter.scope != "t":
                    continue
                for period, limit, spent, reserved in (("day", r.meter.daily_usd, r.daily_spent, r.daily_reserved),
                                                       ("month", r.meter.monthly_usd, r.monthly_spent,
                                                        r.monthly_reserved)):
                    if limit is not None:
                        m.tenant_budget.labels(label, period).set(limit)
                        m.tenant_budget_remaining.labels(label, period).set(limit - spent - reserved)
