"""The dry run's planned route per subtask (``POST /v1/route``), without calling the planner.

A dry run spends nothing, so the planner (an upstream call) is not asked: the request's own
enumeration — list lines, else a ``lead: a, b and c`` list, else several questions — stands in for
the plan, and each item is classified and routed exactly as ``routing.route_subtasks`` routes a real
subtask, within an even share of the money and time left after planning and aggregation. The real
planner may split differently; the preview says so.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from router import taxonomy
from router.engine.request_facts import extract_facts
from router.engine.signals import Signals
from router.swarm.plan import Subtask
from router.swarm.prompts import request_text, worker_messages
from router.swarm.routing import SubtaskClassifier, route_subtasks, shares

if TYPE_CHECKING:
    from router.exchange import Routed

_LIST_LINE = re.compile(r"^\s*(?:[-*•]|\d{1,3}[.)])\s+(.+?)\s*$")
_SEPARATORS = re.compile(r"\s*(?:,|;|、|，|；|\band\b)\s*")
_TOOLS = [{"type": "function", "function": {"name": "tool", "parameters": {"type": "object"}}}]


def split_items(text: str, limit: int) -> list[str]:
    lines = [m.group(1) for line in text.splitlines() if (m := _LIST_LINE.match(line))]
    if len(lines) < 2 and ":" in text:
        lines = [i.strip(" .!?") for i in _SEPARATORS.split(text.partition(":")[2].strip()) if i.strip(" .!?")]
    if len(lines) < 2:
        lines = [q.strip() for q in re.split(r"(?<=[?？])", text) if q.strip(" \n?？")]
    return (lines or [text.strip()])[:limit]


def add_subtask_routes(explained: dict[str, Any], routed: Routed, classifier: SubtaskClassifier | None,
                       signals: Signals) -> None:
    """Adds ``swarm.subtasks`` (id, instruction preview, task type, route, why) to a dry run."""
    swarm = explained.get("swarm")
    chosen = routed.decision.chosen
    if swarm is None or chosen is None or chosen.route != taxonomy.SWARM_ROUTE:
        return
    policy = routed.loaded.policy
    request = request_text(routed.body.get("messages") or [])
    items = [Subtask(f"t{n}", item) for n, item in enumerate(split_items(request, policy.swarm.max_agents), 1)]
    tools = any(s.enabled for s in policy.swarm.tools.servers.values())
    # What is left for the agents: the ceiling and budget minus the estimate's planner + aggregator share.
    per_agent = chosen.cost_usd / max(1, chosen.swarm_agents or 1)
    money = routed.decision.limits.max_cost_usd - max(0.0, chosen.cost_usd - per_agent * len(items))
    share = shares(money, routed.decision.limits.latency_budget_ms, len(items),
                   min(policy.swarm.concurrency, policy.swarm.max_agents), 1)

    def facts_of(subtask: Subtask) -> Any:
        body: dict[str, Any] = {"messages": worker_messages([(subtask.id, subtask.instruction)], request, [],
                                                            tools=tools)}
        if tools:
            body["tools"] = _TOOLS
        return extract_facts(body)

    routes = route_subtasks(policy, items, classifier, signals, share, facts_of)
    swarm["subtasks"] = [{**routes[s.id].as_dict(), "instruction": s.instruction[:120]} for s in items]
    swarm["subtasks_note"] = ("from the request's own enumeration, not the planner (a dry run makes no "
                              "upstream call); the planner may split differently")
    swarm["tools"] = sorted(n for n, s in policy.swarm.tools.servers.items() if s.enabled)
