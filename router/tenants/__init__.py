"""Teams, keys, budgets and rate limits, shared across replicas (see README "Tenants").

``build_gate`` wires the pieces for one gateway process: the tenants store (owned by ``ClientAuth``),
the shared state (in-process, or Redis when ``ROUTER_REDIS_URL`` is set), the enforcer with its
failure modes, the bounded tenant metrics and the admission queue.
"""

from __future__ import annotations

from router.engine.admission import AdmissionQueue
from router.engine.live import LiveState
from router.observability.metrics import RouterMetrics
from router.settings import Settings
from router.tenants.enforce import Enforcer
from router.tenants.gate import TenantGate
from router.tenants.metrics import TenantMetrics
from router.tenants.state import MemoryState, SharedState
from router.tenants.store import Directory, TenantsError, TenantStore

__all__ = ["TenantGate", "TenantsError", "build_gate", "needs_shared_state"]


def needs_shared_state(directory: Directory) -> bool:
    """Budgets or rates that several replicas would each enforce on their own (multiplying them)."""
    return any(m.has_budget or m.rpm is not None or m.tpm is not None
               for limits in directory.defaults.values() for m in limits.meters) or any(
        key.daily_budget_usd is not None or key.monthly_budget_usd is not None
        for tenant in directory.tenants.values() for key in tenant.keys)


def build_gate(settings: Settings, store: TenantStore, metrics: RouterMetrics, live: LiveState) -> TenantGate:
    if settings.replicas > 1 and not settings.redis_url and needs_shared_state(store.current):
        raise TenantsError(
            f"{settings.replicas} replicas with budgets or rate limits in the tenants file need shared state: "
            "set ROUTER_REDIS_URL (chart: redis.url or redis.enabled=true). Without it every replica would "
            "enforce the limits on its own, multiplying them by the replica count.")
    state: SharedState
    if settings.redis_url:
        from router.tenants.redis_state import RedisState

        state = RedisState(settings.redis_url, password=settings.redis_password, timeout_s=settings.redis_timeout_s)
    else:
        state = MemoryState()
    tenant_metrics = TenantMetrics(metrics, store.current.names, cap=settings.tenant_label_cap)
    store.add_listener(lambda directory: tenant_metrics.set_names(directory.names))
    enforcer = Enforcer(state, tenant_metrics, budgets_on_failure=settings.redis_failure_budgets,
                        rate_limits_on_failure=settings.redis_failure_rate_limits)
    queue = AdmissionQueue(max_depth=settings.queue_max_depth, timeout_s=settings.queue_timeout_s,
                           on_depth=tenant_metrics.queue_depth)
    live.on_release = queue.released
    return TenantGate(store, enforcer, tenant_metrics, queue, live)
