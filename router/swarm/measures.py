"""The ``router.swarm`` numbers: what ran, how long, how parallel, and what the gateway added.

- ``wall_ms``: plan + fan-out + aggregation, as the swarm saw it.
- ``agent_ms_sum``: summed time of the agents that ran, from holding a slot to their last answer.
- ``critical_path_ms``: plan + the longest dependency chain of agent times + aggregation — the wall
  time with unlimited capacity and no orchestration cost.
- ``parallel_efficiency``: ``agent_ms_sum / (fanout_ms × min(capacity, agents_run))`` — the share of
  the fan-out stage's available slot-time that agents spent working. It is measured over the fan-out
  stage (plan and aggregation are one call each and cannot overlap anything), so 1.0 means every slot
  that could be busy was busy the whole time; dependency chains and stragglers lower it.
- ``orchestration_ms_per_agent``: fan-out time beyond the lower bound the agents' own durations
  impose (``max(longest chain, agent_ms_sum / slots, waves × shortest agent)``), per agent run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from router.swarm.executor import AgentOutcome
from router.swarm.fanout import FanOut
from router.swarm.plan import Plan


@dataclass(slots=True)
class Timeline:
    start: float = 0.0
    planned: float = 0.0
    fanned_out: float = 0.0
    ended: float = 0.0

    @property
    def busy_s(self) -> float:
        """Time with an upstream call of the swarm in flight (the fan-out stage counts as busy)."""
        return max(0.0, self.ended - self.start)


def _chain_ms(outcomes: Sequence[AgentOutcome]) -> float:
    by_index = {o.spec.index: o for o in outcomes}
    memo: dict[int, float] = {}
    for outcome in sorted(outcomes, key=lambda o: o.spec.level):  # dependencies have lower levels
        deps = [memo.get(d, 0.0) for d in outcome.spec.depends_on if d in by_index]
        memo[outcome.spec.index] = outcome.duration_ms + max(deps, default=0.0)
    return max(memo.values(), default=0.0)


def measures(plan: Plan, fan: FanOut, outcomes: Sequence[AgentOutcome], timeline: Timeline, *,
             capacity: int) -> dict[str, Any]:
    ran = [o for o in outcomes if o.attempts > 0]
    plan_ms = (timeline.planned - timeline.start) * 1000
    fanout_ms = (timeline.fanned_out - timeline.planned) * 1000
    aggregate_ms = (timeline.ended - timeline.fanned_out) * 1000
    agent_ms_sum = sum(o.duration_ms for o in ran)
    chain_ms = _chain_ms(ran)
    slots = max(1, min(capacity, len(ran)))
    efficiency = agent_ms_sum / (fanout_ms * slots) if fanout_ms > 0 and ran else 0.0
    shortest = min((o.duration_ms for o in ran), default=0.0)
    bound = max(chain_ms, agent_ms_sum / slots, math.ceil(len(ran) / slots) * shortest)
    return {
        "agents_planned": len(plan.subtasks),
        "agents_run": len(ran),
        "agents_failed": sum(o.status == "failed" for o in outcomes),
        "agents_skipped": len(fan.skipped) + sum(o.status == "skipped" for o in outcomes),
        "wall_ms": round((timeline.ended - timeline.start) * 1000, 1),
        "agent_ms_sum": round(agent_ms_sum, 1),
        "agent_ms_min": round(shortest, 1),
        "agent_ms_max": round(max((o.duration_ms for o in ran), default=0.0), 1),
        "critical_path_ms": round(plan_ms + chain_ms + aggregate_ms, 1),
        "parallel_efficiency": round(min(1.0, efficiency), 4),
        "plan_ms": round(plan_ms, 1),
        "fanout_ms": round(fanout_ms, 1),
        "aggregate_ms": round(aggregate_ms, 1),
        "orchestration_ms_per_agent": round(max(0.0, fanout_ms - bound) / len(ran), 3) if ran else 0.0,
        "capacity": capacity,
        "batch_size": fan.batch_size,
        "subtasks_planned": plan.planned,
        "plan_repaired": plan.repaired,
        "merged": dict(plan.merged),
        "cycle": plan.cycle,
        "plan_notes": list(plan.notes),
        "fanout": fan.as_dict(),
    }
