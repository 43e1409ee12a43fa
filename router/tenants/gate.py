"""The tenants' side of a chat request, as few calls as the request path can make:

    limits = auth.identify(authorization)                    # 401, or the key's KeyLimits
    loaded = tenant_policy(limits, loaded)                   # the tenant's swarm caps
    limits.check_request(model, forced_mode, direct_route)   # 403 permission_denied
    Limits = limits.request_limits(...)                      # strictest of tenant, policy, header, body
    limits.restrict(decision)                                # only allowed routes stay in the chain
    routed = await gate.admit(routed, prepare_again, fail, cascade=cascade.planned)
                                  # queue for capacity, then rates + budget (the cascade's call reserved)
    routed = await cascade.label(routed, relabel)            # only now may the label call be made
    routed.admitted.finish(route, status, cost, tokens)      # settle, cascade included (Accounting.finished)
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from router import errors, taxonomy
from router.auth import ClientAuth
from router.engine.admission import AdmissionQueue, QueueFull
from router.engine.decide import Candidate, Decision, Limits
from router.engine.live import LiveState
from router.observability.metrics import RouterMetrics
from router.policy.loader import LoadedPolicy
from router.policy.model import Policy
from router.settings import Settings
from router.tenancy import Tenant
from router.tenants.enforce import Admitted, Enforcer, Reservation
from router.tenants.limits import KeyLimits
from router.tenants.metrics import TenantMetrics
from router.tenants.model import SwarmCaps
from router.tenants.state import MemoryState, SharedState
from router.tenants.store import Directory, TenantsError, TenantStore

if TYPE_CHECKING:
    from router.exchange import Routed

    CascadePlan = Callable[[Routed], Candidate | None]  # the cascade's label call for a request, if any

MAX_RESERVATION_TTL_MS = 3_600_000


# (id of the policy in force, id of the caps) -> (that policy, those caps, the capped copy); both are
# kept so their ids cannot be reused by other objects while the entry lives. By identity: hashing
# the caps (a pydantic model) on every request costs more than the rest of this look-up.
_CAPPED: dict[tuple[int, int], tuple[LoadedPolicy, SwarmCaps, LoadedPolicy]] = {}


def _capped(loaded: LoadedPolicy, caps: SwarmCaps) -> LoadedPolicy:
    hit = _CAPPED.get((id(loaded), id(caps)))
    if hit is not None and hit[0] is loaded and hit[1] is caps:
        return hit[2]
    if len(_CAPPED) > 256:
        _CAPPED.clear()
    _CAPPED[(id(loaded), id(caps))] = (loaded, caps, capped := _cap(loaded, caps))
    return capped


def _cap(loaded: LoadedPolicy, caps: SwarmCaps) -> LoadedPolicy:
    swarm = loaded.policy.swarm
    update: dict[str, Any] = {}
    if caps.max_agents is not None and caps.max_agents < swarm.max_agents:
        update["max_agents"] = caps.max_agents
    if caps.max_concurrent is not None and caps.max_concurrent < swarm.concurrency:
        update["concurrency"] = caps.max_concurrent
    if not update:
        return loaded
    policy = loaded.policy.model_copy(update={"swarm": swarm.model_copy(update=update)})
    return dataclasses.replace(loaded, policy=policy)


def tenant_policy(limits: KeyLimits, loaded: LoadedPolicy) -> LoadedPolicy:
    """The policy as this key sees it: its swarm caps applied (one cached copy per policy and caps)."""
    if limits.swarm is None:
        return loaded
    return _capped(loaded, limits.swarm)


def self_hosted(policy: Policy, route: str) -> bool:
    """Priced by the GPU hour (a pool the operator runs), rather than per token by a vendor."""
    if route == taxonomy.SWARM_ROUTE:
        roles = (policy.swarm.planner, policy.swarm.worker, policy.swarm.aggregator)
        return all(self_hosted(policy, r) for r in roles)
    backend = policy.backends.get(route.partition(":")[0])
    return backend is not None and backend.pricing.gpu_hour_usd is not None


# id(policy) -> (that policy, its self-hosted routes): kept per policy object (a reload, or a
# tenant's swarm caps, makes a new one), so the set is built once, not per request.
_SELF_HOSTED: dict[int, tuple[Policy, frozenset[str]]] = {}


def self_hosted_routes(policy: Policy) -> frozenset[str]:
    """Every route (``swarm`` included) a tenant with ``self_hosted_spend: exempt`` does not pay for."""
    hit = _SELF_HOSTED.get(id(policy))
    if hit is not None and hit[0] is policy:
        return hit[1]
    if len(_SELF_HOSTED) > 256:
        _SELF_HOSTED.clear()
    routes = frozenset(r for r in (*policy.routes, taxonomy.SWARM_ROUTE) if self_hosted(policy, r))
    _SELF_HOSTED[id(policy)] = (policy, routes)
    return routes


def worst_case_usd(policy: Policy, routed: Routed, extra_usd: float = 0.0) -> float:
    """The most the request can spend: the money cap, or less when every route in the chain would
    hit its output limit (the client's ``max_tokens`` or the backend's) before spending that much.
    ``extra_usd``: spent before the answer (the cascade's label call), within the same cap."""
    cap = routed.decision.spend_limit_usd
    worst = 0.0
    for cand in routed.decision.chain:
        backend = policy.backends.get(cand.backend)
        if cand.route == taxonomy.SWARM_ROUTE or backend is None:
            return cap
        price_in, _, price_out = backend.pricing.per_token_usd()
        out = min(routed.facts.max_output_tokens or backend.max_output_tokens, backend.max_output_tokens)
        worst = max(worst, routed.facts.input_tokens_upper * price_in + out * price_out)
    return min(cap, worst + extra_usd)


def limits_of(routed: Routed) -> KeyLimits | None:
    """The calling key's limits, carried by the request's ``Tenant`` (None: single tenant)."""
    limits = getattr(routed.tenant, "limits", None)
    return limits if isinstance(limits, KeyLimits) else None


class TenantGate:
    """The tenancy hook (``resolve``) and the admission the pipeline awaits before dispatch."""

    def __init__(self, auth: ClientAuth, store: TenantStore, enforcer: Enforcer, metrics: TenantMetrics,
                 queue: AdmissionQueue, live: LiveState) -> None:
        self.auth = auth
        self.store = store
        self.enforcer = enforcer
        self.metrics = metrics
        self.queue = queue
        self.live = live
        # id(limits) -> (those limits, their Tenant): a key's limits live until the next reload, so
        # its Tenant (a str subclass, ~1 µs to make) is made once, not per request. Both are kept,
        # so the id cannot be reused by another object while the entry lives.
        self._tenants: dict[int, tuple[KeyLimits, Tenant]] = {}

    def resolve(self, headers: Mapping[str, str]) -> Tenant:
        """The key's tenant (401 for a missing or unknown key when keys are configured)."""
        limits: KeyLimits = self.auth.identify_request(headers)
        hit = self._tenants.get(id(limits))
        if hit is not None and hit[0] is limits:
            return hit[1]
        if len(self._tenants) >= 4096:  # reloads leave old entries behind: start over, never grow
            self._tenants.clear()
        tenant = Tenant(limits.tenant, limits)
        self._tenants[id(limits)] = (limits, tenant)
        return tenant

    # --- the admission queue ---------------------------------------------------------------------
    @staticmethod
    def queueable(decision: Decision) -> bool:
        """Nothing chosen, and some candidate failed only because its backend is at capacity."""
        return decision.chosen is None and any(c.reasons == ["capacity"] for c in decision.candidates)

    def _has_room(self, policy: Policy, backends: frozenset[str]) -> bool:
        return any(self.live.inflight(b) < policy.backends[b].max_concurrency
                   for b in backends if b in policy.backends)

    async def _wait_for_capacity(self, routed: Routed, prepare_again: Callable[[], Routed],
                                 fail: Callable[[Routed], None]) -> Routed:
        key_limits = limits_of(routed)
        tenant = key_limits.tenant if key_limits else "default"
        priority = key_limits.priority if key_limits else 1
        blocked = [c for c in routed.decision.candidates if c.reasons == ["capacity"]]
        backends = frozenset(c.backend for c in blocked)
        deadline = self.queue.deadline(routed.arrived, routed.decision.limits.latency_budget_ms,
                                       min(c.latency_ms for c in blocked))
        seq = self.queue.ticket()
        started = time.perf_counter()
        while True:
            try:
                in_time = await self.queue.wait(backends, priority=priority, seq=seq, deadline=deadline)
            except QueueFull:
                in_time = False
            if not in_time:
                self.metrics.queue_wait(tenant, "timeout", time.perf_counter() - started)
                self.metrics.rejected(tenant, "queue_timeout")
                fail(routed)  # raises 503 + retry-after
                raise AssertionError("unreachable")
            if not self._has_room(routed.loaded.policy, backends):
                continue
            again = prepare_again()
            again.arrived = routed.arrived
            if again.decision.chosen is not None:
                self.metrics.queue_wait(tenant, "admitted", time.perf_counter() - started)
                return again
            routed = again

    # --- rates and budget ------------------------------------------------------------------------
    async def admit(self, routed: Routed, prepare_again: Callable[[], Routed], fail: Callable[[Routed], None],
                    cascade: CascadePlan | None = None) -> Routed:
        """Queue for capacity, then rates and the budget — before any upstream call, the cascade's
        label call included: ``cascade(routed)`` names that call (or None), and its estimated cost
        is reserved with the answer's worst case."""
        if routed.decision.chosen is None:
            routed = await self._wait_for_capacity(routed, prepare_again, fail)
        limits = limits_of(routed)
        if limits is None:
            return routed
        decision = routed.decision
        policy = routed.loaded.policy
        exempt = self_hosted_routes(policy) if limits.exempt_self_hosted else frozenset()
        if not limits.meters:  # nothing counted, no budget (auth off: every request): what the
            # enforcer would grant without reading the state, with no reservation to work out
            tokens = routed.facts.input_tokens + routed.chosen.output_tokens + routed.chosen.reasoning_tokens
            routed.admitted = Admitted(Reservation(limits, None, tokens), self.metrics, exempt)
            return routed
        chosen = routed.chosen
        tokens = routed.facts.input_tokens + chosen.output_tokens + chosen.reasoning_tokens
        ttl_ms = int(min(MAX_RESERVATION_TTL_MS, max(60_000.0, 3 * decision.limits.latency_budget_ms)))
        all_exempt = bool(exempt) and all(c.route in exempt for c in decision.chain)
        ask = cascade(routed) if cascade is not None and limits.budgeted else None  # no budget: nothing to reserve
        ask_usd = 0.0 if ask is None or ask.route in exempt else ask.cost_usd
        need_usd = 0.0 if chosen.route in exempt else chosen.cost_usd
        try:
            reservation = await self.enforcer.admit(
                limits, reserve_usd=min(decision.spend_limit_usd, ask_usd) if all_exempt else
                worst_case_usd(policy, routed, ask_usd), need_usd=need_usd, tokens=tokens, ttl_ms=ttl_ms)
        except errors.QuotaExceeded:
            chain = [c for c in decision.chain if c.route in exempt]
            if not chain:
                raise
            # The budget is spent, but this tenant's self-hosted routes cost it nothing: use only those.
            decision.chosen, decision.fallbacks = chain[0], chain[1:]
            all_exempt = True
            need_usd = 0.0
            reservation = await self.enforcer.admit(limits, reserve_usd=0.0, need_usd=0.0, tokens=tokens,
                                                    ttl_ms=ttl_ms)
        granted = reservation.granted_usd
        if granted is not None and not all_exempt and granted < decision.spend_limit_usd:
            decision.limits = Limits(max_cost_usd=granted, latency_budget_ms=decision.limits.latency_budget_ms)
            decision.best_effort = False  # the budget, not the policy, now sets the money
        # What the reservation leaves the cascade's call once the answer's least is set aside (a
        # call the budget pays for runs only within it; no budget: no bound here).
        cascade_usd = math.inf if granted is None else max(0.0, granted - need_usd)
        routed.admitted = Admitted(reservation, self.metrics, exempt, cascade_usd=cascade_usd,
                                   answer_reserved=granted is None or not all_exempt)
        return routed


def needs_shared_state(directory: Directory) -> bool:
    """Budgets or rates that several replicas would each enforce on their own (multiplying them)."""
    return any(m.has_budget or m.rpm is not None or m.tpm is not None
               for limits in directory.defaults.values() for m in limits.meters) or any(
        key.daily_budget_usd is not None or key.monthly_budget_usd is not None
        for tenant in directory.tenants.values() for key in tenant.keys)


def build_gate(settings: Settings, auth: ClientAuth, store: TenantStore, metrics: RouterMetrics,
               live: LiveState) -> TenantGate:
    """The tenant side of one gateway process (``Services.build`` calls it)."""
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
    return TenantGate(auth, store, enforcer, tenant_metrics, queue, live)
