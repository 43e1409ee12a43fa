"""The routing decision: a pure function of (policy, request facts, label, controls, live signals).

1. candidates: the task type's ordered routes (filtered/extended by a forced mode), or the one
   route the client named;
2. estimates per candidate: cost = tokens x prices, latency = queue wait + TTFT + tokens / speed;
3. feasibility: enabled, modality, tools, context window, circuit, capacity, cost <= ceiling,
   latency <= budget — every failed check is recorded as a reason code and a sentence;
4. choice by the objective; the other feasible candidates, ranked the same way, are the fallbacks.

A saturated engine queue is a soft limit: it sends traffic elsewhere while another route fits,
and when none does the request queues on the self-hosted pool rather than being refused.
When nothing fits and the policy says ``best_effort``, the candidates that failed only on money or
time are used, cheapest (or fastest) first, and ``Decision.spend_limit_usd`` lifts the money cap to
the estimates of its chain (the ceiling cannot be met anyway).

Exploration (``policy.exploration.rate``, off by default) stays pure too: the caller passes a
uniform draw in [0, 1) as ``explore_draw``; below the rate, another *feasible* candidate (so never
one that breaks the ceiling or the budget) is chosen uniformly, and ``Decision.propensity`` is the
probability that the chosen route was chosen (1.0 when nothing was random). The signals the
decision read are kept on ``Decision.signals_used``, so a logged decision can be replayed exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from router import taxonomy
from router.engine.anthropic_tools import runs_anthropic_tools
from router.engine.anthropic_tools import why_not as anthropic_tools_why_not
from router.engine.request_facts import RequestFacts
from router.engine.signals import BackendSignals, RouteSignals, Signals
from router.policy.model import OutputEstimate, Policy

ANSWER_LENGTH_FACTOR = {"short": 0.4, "medium": 1.0, "long": 2.5}
_DEFAULT_ESTIMATE = OutputEstimate(output_tokens=500, reasoning_tokens=2000)
# Rejections that say "not available right now" rather than "cannot meet this request".
AVAILABILITY_REASONS = frozenset({"circuit_open", "capacity", "disabled"})
_MONEY_AND_TIME = frozenset({"cost", "latency"})


@dataclass(frozen=True, slots=True)
class Label:
    """What the classifier (or the client's X-Router-Task-Type) says about the request."""

    task_type: str
    confidence: float = 1.0
    answer_length: str = "medium"
    subtasks: int = 1


@dataclass(frozen=True, slots=True)
class Limits:
    max_cost_usd: float
    latency_budget_ms: float


@dataclass(slots=True)
class Candidate:
    route: str
    backend: str
    mode: str
    quality: float
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    reasons: list[str] = field(default_factory=list)   # reason codes (metric label values)
    why: list[str] = field(default_factory=list)       # one sentence per reason, same order
    details: list[str] = field(default_factory=list)   # notes that are not rejections
    swarm_agents: int | None = None
    queued: bool = False  # rejected only because the engine queue is full (a soft limit)

    @property
    def feasible(self) -> bool:
        return not self.reasons

    def reject(self, reason: str, why: str) -> None:
        self.reasons.append(reason)
        self.why.append(why)

    def rejection(self) -> str:
        return "; ".join(f"{r}: {w}" for r, w in zip(self.reasons, self.why, strict=True))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "route": self.route, "backend": self.backend, "mode": self.mode,
            "estimated_cost_usd": round(self.cost_usd, 8), "estimated_latency_ms": round(self.latency_ms, 1),
            "quality": self.quality, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens, "feasible": self.feasible,
            "rejected_because": list(self.reasons), "why": list(self.why), "notes": list(self.details),
        }
        if self.swarm_agents is not None:
            out["swarm_agents"] = self.swarm_agents
        return out


@dataclass(slots=True)
class Decision:
    task_type: str
    confidence: float
    limits: Limits
    objective: str
    candidates: list[Candidate]
    chosen: Candidate | None
    fallbacks: list[Candidate]
    best_effort: bool = False
    propensity: float = 1.0        # probability of choosing `chosen` given the inputs (exploration)
    explored: bool = False         # chosen by exploration rather than by the objective
    explore_draw: float | None = None  # the caller's uniform draw, logged so replay can repeat it
    signals_used: SignalsUsed | None = None

    @property
    def chain(self) -> list[Candidate]:
        return ([self.chosen] if self.chosen else []) + self.fallbacks

    @property
    def unavailable(self) -> bool:
        """Nothing was chosen, but some route would fit once it is available again (-> 503, not 400)."""
        return self.chosen is None and any(c.reasons and AVAILABILITY_REASONS.issuperset(c.reasons)
                                           for c in self.candidates)

    @property
    def spend_limit_usd(self) -> float:
        """The money the executor may spend: the ceiling, or for best effort what the dearest route
        of the chain is estimated to cost (so a fallback can still be paid for)."""
        if self.best_effort and self.chosen is not None:
            return max(self.limits.max_cost_usd, *(c.cost_usd for c in self.chain))
        return self.limits.max_cost_usd

    def explain_rejections(self) -> str:
        """Each rejected candidate with every reason, e.g. ``gpt:default (cost: est. $0.01 > ...)``."""
        parts = [f"{c.route} ({c.rejection()})" for c in self.candidates if c.reasons]
        return ", ".join(parts) or "no candidate routes"


@dataclass(frozen=True, slots=True)
class SignalsUsed:
    """Exactly what a decision read from the live signals (route and backend views)."""

    routes: dict[str, RouteSignals]
    backends: dict[str, BackendSignals]


class _Snapshot:
    """The signals of one decision, each route and backend read once (and consistently for all
    its routes); what was read is what the decision log records for replay."""

    __slots__ = ("_backends", "_routes", "_signals")

    def __init__(self, signals: Signals) -> None:
        self._signals = signals
        self._backends: dict[str, BackendSignals] = {}
        self._routes: dict[str, RouteSignals] = {}

    def route(self, route: str) -> RouteSignals:
        live = self._routes.get(route)
        if live is None:
            live = self._routes[route] = self._signals.route(route)
        return live

    def backend(self, backend: str) -> BackendSignals:
        load = self._backends.get(backend)
        if load is None:
            load = self._backends[backend] = self._signals.backend(backend)
        return load

    def used(self) -> SignalsUsed:
        return SignalsUsed(self._routes, self._backends)


def route_serves_mode(route_mode: str, wanted: str) -> bool:
    """Vendor ``default`` routes serve any non-swarm mode; Kimi routes serve exactly theirs."""
    return route_mode == wanted or (route_mode == taxonomy.DEFAULT_MODE and wanted != "swarm")


def candidate_routes(policy: Policy, task_type: str, forced_mode: str | None) -> list[str]:
    listed = list(policy.tasks[task_type].candidates) if task_type in policy.tasks else []
    if forced_mode is None:
        return listed
    if forced_mode == "swarm":
        return [taxonomy.SWARM_ROUTE]
    # Keep the task's preference order, then every other route that serves the forced mode.
    ordered = listed + [r for r in policy.routes if r not in listed]
    return [r for r in ordered if r != taxonomy.SWARM_ROUTE
            and route_serves_mode(r.partition(":")[2], forced_mode)]


def _thinks(policy: Policy, backend: str, mode: str) -> bool:
    return mode in ("thinking", "agent") or (mode == taxonomy.DEFAULT_MODE
                                             and policy.backends[backend].thinks_by_default)


def estimate_route(policy: Policy, route: str, facts: RequestFacts, label: Label, signals: Signals,
                   *, output_tokens: int | None = None) -> Candidate:
    backend_name, _, mode = route.partition(":")
    backend = policy.backends[backend_name]
    est = policy.estimates.get(label.task_type, _DEFAULT_ESTIMATE)
    out = output_tokens or max(16, round(est.output_tokens * ANSWER_LENGTH_FACTOR.get(label.answer_length, 1)))
    thinking = est.reasoning_tokens if _thinks(policy, backend_name, mode) else 0
    if facts.max_output_tokens is not None:  # the client's limit covers reasoning + answer
        out = min(out, facts.max_output_tokens)
        thinking = min(thinking, max(0, facts.max_output_tokens - out))
    price_in, _, price_out = backend.pricing.per_token_usd()
    live = signals.route(route)
    load = signals.backend(backend_name)
    generated = out + thinking
    return Candidate(
        route=route, backend=backend_name, mode=mode,
        quality=policy.quality.get(label.task_type, {}).get(route, 0.5),
        input_tokens=facts.input_tokens, output_tokens=out, reasoning_tokens=thinking,
        cost_usd=facts.input_tokens * price_in + generated * price_out,
        latency_ms=load.queue_wait_ms + live.ttft_ms + generated / live.output_tokens_per_s * 1000.0,
    )


def estimate_swarm(policy: Policy, facts: RequestFacts, label: Label, signals: Signals,
                   limits: Limits) -> Candidate:
    """Planner + N workers in waves of the swarm's capacity + aggregator; N shrinks to fit the limits.

    Planning and merging are priced as simple tasks (their reasoning is about the split and the
    merge, not the problem); the aggregator writes the answer the task type expects. This mirrors
    what ``router.swarm`` reserves at run time, where the actual plan refines N.
    """
    cfg = policy.swarm
    simple = Label("simple")
    planner = estimate_route(policy, cfg.planner, facts, simple, signals, output_tokens=60 * max(1, label.subtasks))
    worker_facts = RequestFacts(text_chars=min(facts.text_chars, 2_000) + 600,
                                text_bytes=min(facts.text_bytes, 6_000) + 600,
                                images=0, videos=0, has_tools=False, max_output_tokens=None, stream=False)
    worker = estimate_route(policy, cfg.worker, worker_facts, simple, signals, output_tokens=cfg.worker_output_tokens)
    est = policy.estimates.get(label.task_type, _DEFAULT_ESTIMATE)
    answer = max(16, round(est.output_tokens * ANSWER_LENGTH_FACTOR.get(label.answer_length, 1)))
    capacity = min(cfg.concurrency, policy.backends[cfg.worker.partition(":")[0]].max_concurrency)
    wanted = max(1, min(label.subtasks, cfg.max_agents))

    def totals(n: int) -> tuple[float, float, Candidate]:
        chars = facts.text_chars + n * cfg.worker_output_tokens * 4  # the request and every answer
        agg_facts = RequestFacts(text_chars=chars, text_bytes=chars, images=0, videos=0, has_tools=False,
                                 max_output_tokens=None, stream=False)
        aggregator = estimate_route(policy, cfg.aggregator, agg_facts, simple, signals, output_tokens=answer)
        waves = math.ceil(n / capacity)
        cost = planner.cost_usd + n * worker.cost_usd + aggregator.cost_usd
        latency = planner.latency_ms + waves * worker.latency_ms + aggregator.latency_ms
        return cost, latency, aggregator

    n = wanted
    cost, latency, aggregator = totals(n)
    while n > 1 and (cost > limits.max_cost_usd or latency > limits.latency_budget_ms):
        n -= 1
        cost, latency, aggregator = totals(n)
    cand = Candidate(route=taxonomy.SWARM_ROUTE, backend=planner.backend, mode="swarm",
                     quality=policy.quality.get(label.task_type, {}).get(taxonomy.SWARM_ROUTE, 0.5),
                     input_tokens=facts.input_tokens,
                     output_tokens=aggregator.output_tokens + n * worker.output_tokens,
                     reasoning_tokens=planner.reasoning_tokens + aggregator.reasoning_tokens,
                     cost_usd=cost, latency_ms=latency, swarm_agents=n)
    cand.details.append(f"{n} agent(s) in {math.ceil(n / capacity)} wave(s) of up to {capacity}; "
                        f"~${worker.cost_usd:.6f} and ~{worker.latency_ms:.0f} ms per agent")
    if n < wanted:
        cand.details.append(f"fan-out reduced from {wanted} to {n} agents to fit the limits")
    return cand


def _check(policy: Policy, cand: Candidate, facts: RequestFacts, limits: Limits, signals: Signals,
           label: Label, forced: bool) -> None:
    if cand.route == taxonomy.SWARM_ROUTE:
        if not policy.swarm.enabled:
            cand.reject("disabled", "swarm is disabled in the policy")
        for role_route in dict.fromkeys((policy.swarm.planner, policy.swarm.worker, policy.swarm.aggregator)):
            if role_route not in policy.routes:
                cand.reject("disabled", f"swarm needs route {role_route}, whose backend is disabled")
                break
        if not forced and label.subtasks < policy.swarm.min_subtasks:
            cand.reject("mode", f"{label.subtasks} subtask(s) < swarm.min_subtasks {policy.swarm.min_subtasks}")
        aggregator_backend = policy.swarm.aggregator.partition(":")[0]
        if facts.has_tools and not policy.backends[aggregator_backend].supports_tools:
            # Client tools are the aggregator's to call (sub-agents only ever get MCP tools).
            cand.reject("tools", f"the swarm aggregator's backend {aggregator_backend} does not support tools")
        if facts.anthropic_tools:  # Anthropic-defined tools: sub-agents and aggregator get chat bodies
            cand.reject("tools", anthropic_tools_why_not(facts.anthropic_tools, "swarm"))
        if cand.reasons:
            return
        backend_names: tuple[str, ...] = tuple(sorted({policy.swarm.planner.partition(":")[0],
                                                       policy.swarm.worker.partition(":")[0]}))
    else:
        backend = policy.backends[cand.backend]
        backend_names = (cand.backend,)
        if cand.route not in policy.routes:
            cand.reject("disabled", f"backend {cand.backend} is disabled (missing URL or key)")
        if facts.images or facts.videos:
            missing = facts.modalities.difference(backend.modalities)
            if missing:
                cand.reject("modality", f"{cand.backend} does not take {', '.join(sorted(missing))} input")
        if facts.has_tools and not backend.supports_tools:
            cand.reject("tools", f"{cand.backend} does not support tools")
        if facts.anthropic_tools and not runs_anthropic_tools(backend):  # e.g. web_search: Claude routes only
            cand.reject("tools", anthropic_tools_why_not(facts.anthropic_tools, cand.backend))
        needed = cand.input_tokens + cand.output_tokens
        if needed > backend.context_window:
            cand.reject("context", f"~{needed} tokens > context window {backend.context_window}")
    for name in backend_names:
        load = signals.backend(name)
        backend = policy.backends[name]
        if load.circuit == "open":
            cand.reject("circuit_open", f"circuit of {name} is open")
        elif load.inflight >= backend.max_concurrency:
            cand.reject("capacity", f"{name} has {load.inflight} requests in flight "
                                    f"(max_concurrency {backend.max_concurrency})")
        elif (load.queue_waiting is not None and backend.queue_capacity
              and load.queue_waiting >= backend.queue_capacity):
            cand.reject("capacity", f"{name} engine queue {load.queue_waiting:g} >= queue_capacity "
                                    f"{backend.queue_capacity}")
            cand.queued = True
    if cand.cost_usd > limits.max_cost_usd:
        cand.reject("cost", f"est. ${cand.cost_usd:.6f} > ceiling ${limits.max_cost_usd:g}")
    if cand.latency_ms > limits.latency_budget_ms:
        cand.reject("latency", f"est. {cand.latency_ms:.0f} ms > budget {limits.latency_budget_ms:g} ms")


def _rank(policy: Policy, feasible: list[Candidate], min_quality: float) -> list[Candidate]:
    if len(feasible) < 2:  # a direct route (most requests name one): nothing to order
        return list(feasible)
    order = {c.route: i for i, c in enumerate(feasible)}
    if policy.objective == "fastest":
        return sorted(feasible, key=lambda c: (c.latency_ms, order[c.route]))
    if policy.objective == "best_quality_within_budget":
        return sorted(feasible, key=lambda c: (-c.quality, c.cost_usd, order[c.route]))
    # cheapest_meeting_quality: those meeting the floor by cost; if none does, the best quality.
    good = sorted((c for c in feasible if c.quality >= min_quality), key=lambda c: (c.cost_usd, order[c.route]))
    rest = sorted((c for c in feasible if c.quality < min_quality),
                  key=lambda c: (-c.quality, c.cost_usd, order[c.route]))
    return good + rest


def _explore(decision: Decision, ranked: list[Candidate], rate: float, draw: float) -> None:
    """With probability ``rate``, choose uniformly among the other feasible candidates.

    One uniform draw decides both whether to explore and which alternative: ``draw < rate`` explores
    and ``draw / rate`` (again uniform on [0, 1)) picks the alternative. Only feasible candidates are
    ranked, so exploration never breaks the request's ceiling or budget.
    """
    others = len(ranked) - 1
    if others < 1 or rate <= 0:
        return
    if draw >= rate:
        decision.propensity = 1.0 - rate
        return
    pick = ranked[1 + min(others - 1, int(draw / rate * others))]
    decision.chosen = pick
    decision.fallbacks = [c for c in ranked if c is not pick]
    decision.propensity = rate / others
    decision.explored = True


def decide(policy: Policy, facts: RequestFacts, label: Label, limits: Limits, signals: Signals, *,
           forced_mode: str | None = None, direct_route: str | None = None,
           explore_draw: float | None = None) -> Decision:
    routes = [direct_route] if direct_route else candidate_routes(policy, label.task_type, forced_mode)
    forced = direct_route is not None or forced_mode is not None
    signals = snapshot = _Snapshot(signals)
    candidates: list[Candidate] = []
    for route in routes:
        if route == taxonomy.SWARM_ROUTE:
            cand = estimate_swarm(policy, facts, label, signals, limits)
        elif route.partition(":")[0] not in policy.backends:
            continue
        else:
            cand = estimate_route(policy, route, facts, label, signals)
        _check(policy, cand, facts, limits, signals, label, forced)
        candidates.append(cand)
    task_rule = policy.tasks.get(label.task_type)
    min_quality = task_rule.min_quality if task_rule and task_rule.min_quality is not None else policy.min_quality
    feasible = [c for c in candidates if not c.reasons]
    if not feasible:
        # Nowhere to spill to: queue on the saturated self-hosted pool rather than refuse.
        queued = [c for c in candidates if c.queued and c.reasons == ["capacity"]]
        for cand in queued:
            cand.details.append("engine queue full, but no other route fits: queued here")
            cand.reasons.clear()
            cand.why.clear()
        feasible = queued
    ranked = _rank(policy, feasible, min_quality)
    decision = Decision(task_type=label.task_type, confidence=label.confidence, limits=limits,
                        objective=policy.objective, candidates=candidates,
                        chosen=ranked[0] if ranked else None, fallbacks=ranked[1:],
                        signals_used=snapshot.used(), explore_draw=explore_draw)
    # Explore only among routes the objective could pick for `auto` (a client's forced route or
    # mode is a contract, not an experiment).
    if explore_draw is not None and not forced and ranked:
        _explore(decision, ranked, policy.exploration.rate, explore_draw)
    if decision.chosen is None and policy.on_infeasible == "best_effort":
        # Closest to the contract: only money/time were the problem; cheapest (or fastest) first.
        soft = [c for c in candidates if _MONEY_AND_TIME.issuperset(c.reasons)]
        key = (lambda c: c.latency_ms) if policy.objective == "fastest" else (lambda c: c.cost_usd)
        soft.sort(key=key)
        if soft:
            decision.chosen, decision.fallbacks, decision.best_effort = soft[0], soft[1:], True
    return decision
