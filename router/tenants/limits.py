"""What one key may do: its tenant's limits narrowed by the key's own, resolved once per reload.

``KeyLimits`` answers the per-request questions — the ceiling and latency budget (the strictest of
tenant, policy, header and body), whether a model / route / mode is allowed, the swarm caps — and
names the *meters* (tenant, and the key when it has rates or budgets of its own) whose counters the
shared state keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from router import errors, taxonomy
from router.engine.decide import Decision, Limits
from router.tenants.model import PRIORITY_CLASSES, Ceiling, KeyEntry, LimitFields, SwarmCaps, Tenant


@dataclass(frozen=True, slots=True)
class Meter:
    """One set of counters in the shared state (a tenant's, or one key's)."""

    scope: str  # "t" for the tenant, "k:<key id>" for a key; never the key or its hash
    rpm: int | None = None
    tpm: int | None = None
    daily_usd: float | None = None
    monthly_usd: float | None = None
    # The x-ratelimit-limit-* values, rendered once per reload rather than once per request.
    rpm_text: str = field(init=False, compare=False, repr=False)
    tpm_text: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rpm_text", str(self.rpm))
        object.__setattr__(self, "tpm_text", str(self.tpm))

    @property
    def has_budget(self) -> bool:
        return self.daily_usd is not None or self.monthly_usd is not None

    @property
    def counts(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.has_budget


def _pick(key: LimitFields | None, tenant: LimitFields, field: str) -> object:
    own = getattr(key, field) if key is not None else None
    return own if own is not None else getattr(tenant, field)


def _ceiling(policy_default: float, ceiling: Ceiling | None, asked: float | None) -> float:
    """The least of the policy default, the tenant's max, and the client's ask (else the tenant's default)."""
    value = policy_default
    if ceiling is not None:
        if ceiling.max is not None and ceiling.max < value:
            value = ceiling.max
        if asked is None and ceiling.default is not None and ceiling.default < value:
            value = ceiling.default
    if asked is not None and asked < value:
        value = asked
    return value


@dataclass(frozen=True, slots=True)
class KeyLimits:
    tenant: str
    key_id: str | None
    priority: int
    meters: tuple[Meter, ...]
    max_cost: Ceiling | None = None
    latency_budget: Ceiling | None = None
    allowed_models: frozenset[str] | None = None
    allowed_routes: frozenset[str] | None = None
    allowed_modes: frozenset[str] | None = None
    swarm: SwarmCaps | None = None
    exempt_self_hosted: bool = False
    budgeted: bool = field(init=False)  # some meter has a budget (worked out once, not per request)
    rated: bool = field(init=False)     # some meter has a request or token rate
    # (policy default cost, default latency, asked cost, asked latency) -> Limits: a client sends
    # the same few asks again and again, and building a frozen Limits costs more than this look-up.
    _limits_memo: dict[tuple[float, float, float | None, float | None], Limits] = field(
        init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "budgeted", any(m.has_budget for m in self.meters))
        object.__setattr__(self, "rated", any(m.rpm is not None or m.tpm is not None for m in self.meters))
        object.__setattr__(self, "_limits_memo", {})

    @classmethod
    def resolve(cls, name: str, tenant: Tenant, key: KeyEntry | None) -> KeyLimits:
        meters = [Meter("t", tenant.rpm, tenant.tpm, tenant.daily_budget_usd, tenant.monthly_budget_usd)]
        if key is not None:
            own = Meter(f"k:{key.id}", key.rpm, key.tpm, key.daily_budget_usd, key.monthly_budget_usd)
            if own.counts:
                meters.append(own)

        def frozen(field: str) -> frozenset[str] | None:
            value = _pick(key, tenant, field)
            return frozenset(value) if isinstance(value, list) else None

        swarm = _pick(key, tenant, "swarm")
        max_cost = _pick(key, tenant, "max_cost_usd")
        latency = _pick(key, tenant, "latency_budget_ms")
        return cls(tenant=name, key_id=key.id if key else None, priority=PRIORITY_CLASSES[tenant.priority],
                   meters=tuple(m for m in meters if m.counts),
                   max_cost=max_cost if isinstance(max_cost, Ceiling) else None,
                   latency_budget=latency if isinstance(latency, Ceiling) else None,
                   allowed_models=frozen("allowed_models"), allowed_routes=frozen("allowed_routes"),
                   allowed_modes=frozen("allowed_modes"),
                   swarm=swarm if isinstance(swarm, SwarmCaps) else None,
                   exempt_self_hosted=tenant.self_hosted_spend == "exempt")

    @classmethod
    def unlimited(cls, tenant: str) -> KeyLimits:
        return cls(tenant=tenant, key_id=None, priority=PRIORITY_CLASSES["normal"], meters=())

    # --- per request -----------------------------------------------------------------------------
    def request_limits(self, default_cost: float, default_latency_ms: float, asked_cost: float | None,
                       asked_latency_ms: float | None) -> Limits:
        """The strictest of policy default, tenant (default when the client asks nothing; max) and client."""
        memo = self._limits_memo
        ask = (default_cost, default_latency_ms, asked_cost, asked_latency_ms)
        limits = memo.get(ask)
        if limits is None:
            if len(memo) >= 256:  # clients asking ever-new values: start over rather than grow
                memo.clear()
            limits = memo[ask] = Limits(max_cost_usd=_ceiling(default_cost, self.max_cost, asked_cost),
                                        latency_budget_ms=_ceiling(default_latency_ms, self.latency_budget,
                                                                   asked_latency_ms))
        return limits

    def route_allowed(self, route: str, mode: str) -> bool:
        if self.allowed_routes is not None and route not in self.allowed_routes \
                and route.partition(":")[0] not in self.allowed_routes:
            return False
        # Vendor routes have the single mode "default": mode lists speak of Kimi's modes and swarm.
        return self.allowed_modes is None or mode not in taxonomy.MODES or mode in self.allowed_modes

    def check_request(self, model: str, forced_mode: str | None, direct_route: str | None) -> None:
        """403 for a model, route or mode this key may not use (before any work is done)."""
        if self.allowed_models is not None and model not in self.allowed_models:
            raise errors.PermissionDenied(f"This key may not use the model '{model}'.", param="model")
        if forced_mode is not None and self.allowed_modes is not None and forced_mode not in self.allowed_modes:
            raise errors.PermissionDenied(f"This key may not use the mode '{forced_mode}'.", param="model")
        if direct_route is not None:
            mode = taxonomy.SWARM_ROUTE if direct_route == taxonomy.SWARM_ROUTE else direct_route.partition(":")[2]
            if not self.route_allowed(direct_route, mode):
                raise errors.PermissionDenied(f"This key may not use the route '{direct_route}'.", param="model")

    def restrict(self, decision: Decision) -> None:
        """Drop the routes this key may not use from a decision (they show as ``not_allowed``)."""
        if self.allowed_routes is None and self.allowed_modes is None:
            return
        allowed = [self.route_allowed(c.route, c.mode) for c in decision.candidates]
        if decision.candidates and not any(allowed):
            raise errors.PermissionDenied("This key may not use any route that could serve this request.",
                                          param="model")
        for cand, ok in zip(decision.candidates, allowed, strict=True):
            if not ok:
                cand.reject("not_allowed", "this key may not use this route")
        chain = [c for c in decision.chain if self.route_allowed(c.route, c.mode)]
        decision.chosen = chain[0] if chain else None
        decision.fallbacks = chain[1:]
        if decision.chosen is None:
            decision.best_effort = False
