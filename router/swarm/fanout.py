"""Adaptive fan-out: how many sub-agents a plan gets, which subtasks they do, and why.

Four bounds, each reported:
- ``max_agents`` (policy, <= 100);
- cost: subtasks the money left after planning can pay for, after holding back the aggregation;
- latency: waves of ``capacity`` agents that fit in what is left of the latency budget
  (critical-path estimate: one worker's latency per wave, then the aggregator);
- capacity: agents at once = ``min(swarm.concurrency, worker backend max_concurrency − its requests
  already in flight)``.
Cost bounds the *work*: subtasks it cannot pay for are skipped (named in the answer). The others
bound *parallelism*: when more subtasks are affordable than agents allowed, independent subtasks of
the same dependency level are batched into one agent (a batched agent pays one TTFT instead of
several, so batching never makes the critical path longer in this model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from router.swarm.plan import Plan, Subtask


@dataclass(frozen=True, slots=True)
class Estimates:
    per_subtask_usd: float  # one worker, plus the aggregator reading its answer
    aggregator_usd: float  # the aggregator's part that does not grow with the number of agents
    worker_ms: float  # one worker's expected latency
    aggregator_ms: float


@dataclass(frozen=True, slots=True)
class AgentSpec:
    index: int  # 0-based, in plan order
    subtasks: tuple[Subtask, ...]
    depends_on: tuple[int, ...]  # indices of the agents whose results it needs
    level: int
    route: str = ""  # the route its subtasks were sent to (per-subtask routing); "" = swarm.worker

    @property
    def ids(self) -> str:
        return "+".join(s.id for s in self.subtasks)


@dataclass(slots=True)
class FanOut:
    agents: list[AgentSpec]
    skipped: list[tuple[str, str]]  # (subtask id, reason) for subtasks no agent will do
    batch_size: int
    capacity: int
    bounds: dict[str, int]
    binding: str  # which bound decided the number of agents ("plan" when none did)
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"subtasks": sum(len(a.subtasks) for a in self.agents) + len(self.skipped),
                "agents": len(self.agents), "batch_size": self.batch_size, "capacity": self.capacity,
                "bounds": dict(self.bounds), "binding": self.binding, "reasons": list(self.reasons)}


def _affordable(plan: Plan, count: int) -> tuple[list[Subtask], list[tuple[str, str]]]:
    """Up to ``count`` subtasks, dependencies first, each with all its dependencies chosen."""
    order = sorted(range(len(plan.subtasks)), key=lambda i: (plan.levels[plan.subtasks[i].id], i))
    chosen: set[str] = set()
    skipped: list[tuple[str, str]] = []
    for i in order:
        s = plan.subtasks[i]
        if len(chosen) >= count:
            skipped.append((s.id, "budget: the cost ceiling cannot pay for another agent"))
        elif any(d not in chosen for d in s.depends_on):
            skipped.append((s.id, "budget: a subtask it depends on could not be paid for"))
        else:
            chosen.add(s.id)
    return [s for s in plan.subtasks if s.id in chosen], skipped


def _batch(plan: Plan, chosen: list[Subtask], limit: int,
           route_of: dict[str, str]) -> tuple[list[list[Subtask]], int]:
    """Groups (in plan order) of same-level, same-route subtasks, as few per group as keeps them
    within ``limit``."""
    by_level: dict[tuple[int, str], list[Subtask]] = {}
    for s in chosen:
        by_level.setdefault((plan.levels[s.id], route_of.get(s.id, "")), []).append(s)
    size = max(1, math.ceil(len(chosen) / max(1, limit)))
    while True:
        groups = [members[i:i + size] for members in by_level.values() for i in range(0, len(members), size)]
        if len(groups) <= limit or size >= max(len(m) for m in by_level.values()):
            break
        size += 1
    position = {s.id: i for i, s in enumerate(plan.subtasks)}
    groups.sort(key=lambda g: position[g[0].id])
    return groups, size


def plan_fanout(plan: Plan, est: Estimates, *, money_left: float, time_left_ms: float, capacity: int,
                max_agents: int, route_of: dict[str, str] | None = None) -> FanOut:
    total = len(plan.subtasks)
    capacity = max(1, capacity)
    spare = money_left - est.aggregator_usd
    by_cost = max(0, math.floor(spare / est.per_subtask_usd)) if est.per_subtask_usd > 0 else total
    waves = max(1, math.floor((time_left_ms - est.aggregator_ms) / est.worker_ms)) if est.worker_ms > 0 else total
    by_latency = waves * capacity
    bounds = {"plan": total, "max_agents": max_agents, "cost": by_cost, "latency": by_latency,
              "capacity": capacity}
    chosen, skipped = _affordable(plan, min(total, by_cost))
    parallel = min(max_agents, by_latency)
    route_of = route_of or {}
    groups, size = _batch(plan, chosen, parallel, route_of) if chosen else ([], 1)
    agent_of = {s.id: n for n, group in enumerate(groups) for s in group}
    agents = [AgentSpec(index=n, subtasks=tuple(group),
                        depends_on=tuple(sorted({agent_of[d] for s in group for d in s.depends_on} - {n})),
                        level=plan.levels[group[0].id], route=route_of.get(group[0].id, ""))
              for n, group in enumerate(groups)]
    binding = min(("cost", by_cost), ("max_agents", max_agents), ("latency", by_latency),
                  key=lambda kv: kv[1])[0] if min(by_cost, parallel) < total else "plan"
    reasons = [f"plan: {total} subtask(s), dependency depth {plan.depth}",
               f"capacity: {capacity} agent(s) at once",
               f"cost: ${money_left:.6f} left after planning pays for {by_cost} subtask(s) "
               f"(~${est.per_subtask_usd:.6f} each, ${est.aggregator_usd:.6f} held for aggregation)",
               f"latency: {waves} wave(s) of ~{est.worker_ms:.0f} ms fit before the aggregator "
               f"(~{est.aggregator_ms:.0f} ms) within the budget, i.e. {by_latency} agent(s)",
               f"max_agents: {max_agents}"]
    if skipped:
        reasons.append(f"skipped {len(skipped)} subtask(s) the ceiling cannot pay for")
    if size > 1:
        reasons.append(f"batched {len(chosen)} subtasks into {len(agents)} agents (up to {size} each) "
                       f"to stay within {parallel} agents")
    if plan.depth > waves:
        reasons.append(f"the dependency depth {plan.depth} exceeds the {waves} wave(s) the budget allows; "
                       "the latency budget will probably be missed")
    return FanOut(agents, skipped, size, capacity, bounds, binding, reasons)
