"""Per-subtask routing: each planned subtask is classified and routed by ``decide()`` like a request.

The subtask's limits are its share of what the ledger has left (after the aggregation is held back)
and of the time before the aggregator must start, so a lookup lands on a cheap fast route and a
proof on a thinking one — vendors included when the policy lists them for that task type.
A subtask is never swarmed again: one the classifier calls ``decomposable`` takes its next most
likely task type. ``swarm.worker`` is the default: when no route fits the subtask's share, when the
classifier has nothing better, or when ``swarm.route_subtasks`` is off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from router import taxonomy
from router.engine.decide import Label, Limits, decide
from router.engine.request_facts import RequestFacts
from router.engine.signals import Signals
from router.policy.model import Policy
from router.swarm.plan import Subtask


class SubtaskClassifier(Protocol):
    def classify(self, messages: list[dict[str, Any]], *, tools: list[Any] | None = None,
                 confidence_floor: float = 0.0, fallback: str = "reasoning") -> Any: ...


@dataclass(frozen=True, slots=True)
class SubtaskRoute:
    id: str
    label: Label
    route: str
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "task_type": self.label.task_type, "confidence": round(self.label.confidence, 4),
                "route": self.route, "why": self.why}


@dataclass(frozen=True, slots=True)
class Shares:
    money_usd: float  # one subtask's share of the money
    time_ms: float  # one subtask's share of the time before aggregation


def shares(money_left: float, time_left_ms: float, subtasks: int, capacity: int, depth: int) -> Shares:
    """Money split evenly; time split over the waves (and dependency levels) the agents run in."""
    n = max(1, subtasks)
    waves = max(math.ceil(n / max(1, capacity)), max(1, depth))
    return Shares(max(0.0, money_left) / n, max(0.0, time_left_ms) / waves)


def route_subtasks(policy: Policy, subtasks: Sequence[Subtask], classifier: SubtaskClassifier | None,
                   signals: Signals, share: Shares, facts_of: Any) -> dict[str, SubtaskRoute]:
    """``facts_of(subtask)`` -> the ``RequestFacts`` of the worker call (tools included)."""
    default = policy.swarm.worker
    out: dict[str, SubtaskRoute] = {}
    limits = Limits(max_cost_usd=share.money_usd, latency_budget_ms=share.time_ms)
    cfg = policy.classifier
    for subtask in subtasks:
        if classifier is None or not policy.swarm.route_subtasks:
            out[subtask.id] = SubtaskRoute(subtask.id, Label("simple", 1.0),
                                           default, "swarm.worker (per-subtask routing off)")
            continue
        result = classifier.classify([{"role": "user", "content": subtask.instruction}],
                                     confidence_floor=cfg.confidence_floor, fallback=cfg.fallback_task_type)
        task_type, confidence = result.task_type, float(result.confidence)
        if task_type == "decomposable":  # a subtask is not decomposed again: its next most likely type
            others = {t: p for t, p in dict(result.probabilities).items() if t != "decomposable"}
            if others:
                task_type = max(others, key=others.__getitem__)
                confidence = others[task_type]
        label = Label(task_type, confidence, result.answer_length, 1)
        if label.task_type == "decomposable" or label.task_type not in policy.tasks:
            out[subtask.id] = SubtaskRoute(subtask.id, label, default, f"swarm.worker ({label.task_type} subtask)")
            continue
        facts: RequestFacts = facts_of(subtask)
        decision = decide(policy, facts, label, limits, signals)
        chosen = next((c for c in decision.chain if c.route != taxonomy.SWARM_ROUTE), None)
        if chosen is None:
            out[subtask.id] = SubtaskRoute(subtask.id, label, default,
                                           f"swarm.worker (no route fits its share: {decision.explain_rejections()})")
        else:
            out[subtask.id] = SubtaskRoute(subtask.id, label, chosen.route,
                                           f"decide: {label.task_type}, {policy.objective}")
    return out
