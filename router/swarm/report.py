"""What a swarm run reports about its routes and tools, for ``router.swarm`` and the decision log.

- ``routes``: per route, the agents and subtasks it served and what they cost;
- ``tools``: calls per tool and outcome, their cost, and the MCP servers that could not be reached;
- ``subtasks``: per subtask its task type, route, outcome, cost, steps and tool calls — one row the
  decision log can store to learn where decomposition pays.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from router.swarm.executor import AgentOutcome
from router.swarm.plan import Plan
from router.swarm.routing import SubtaskRoute
from router.swarm.tools import RunTools


def run_report(plan: Plan, outcomes: Sequence[AgentOutcome], routes: dict[str, SubtaskRoute],
               tools: RunTools | None, skipped: Sequence[tuple[str, str]], default_route: str) -> dict[str, Any]:
    by_route: dict[str, dict[str, Any]] = {}
    rows: dict[str, dict[str, Any]] = {}
    calls: Counter[tuple[str, str]] = Counter()
    tool_cost = 0.0
    for outcome in outcomes:
        route = outcome.spec.route or default_route
        entry = by_route.setdefault(route, {"agents": 0, "subtasks": 0, "cost_usd": 0.0})
        entry["agents"] += 1
        entry["subtasks"] += len(outcome.spec.subtasks)
        entry["cost_usd"] += outcome.cost_usd
        for call in outcome.tool_calls:
            calls[(call.tool, call.status)] += 1
            if tools is not None and call.status in ("ok", "error"):
                tool_cost += tools.cost_of(call.tool)
        share = outcome.cost_usd / len(outcome.spec.subtasks)
        for s in outcome.spec.subtasks:
            chosen = routes.get(s.id)
            rows[s.id] = {"id": s.id, "task_type": chosen.label.task_type if chosen else None, "route": route,
                          "why": chosen.why if chosen else "swarm.worker", "status": outcome.status,
                          "cost_usd": round(share, 8), "steps": outcome.steps,
                          "tool_calls": [{"tool": c.tool, "status": c.status, "ms": round(c.ms, 1)}
                                         for c in outcome.tool_calls],
                          "stopped": outcome.stopped, "error": outcome.error}
    for sid, why in skipped:
        chosen = routes.get(sid)
        rows[sid] = {"id": sid, "task_type": chosen.label.task_type if chosen else None,
                     "route": chosen.route if chosen else default_route, "status": "skipped", "cost_usd": 0.0,
                     "steps": 0, "tool_calls": [], "error": why}
    for entry in by_route.values():
        entry["cost_usd"] = round(entry["cost_usd"], 8)
    by_tool: dict[str, dict[str, int]] = {}
    for (tool, status), n in sorted(calls.items()):
        by_tool.setdefault(tool, {})[status] = n
    report: dict[str, Any] = {
        "routes": by_route,
        "subtasks": [rows[s.id] for s in plan.subtasks if s.id in rows],
    }
    if tools is not None:
        report["tools"] = {"offered": sorted(tools.specs), "calls": sum(calls.values()), "by_tool": by_tool,
                           "cost_usd": round(tool_cost, 8), "servers_failed": dict(tools.failed)}
    return report


def tool_footer(report: dict[str, Any]) -> str:
    """One line per tool problem, so the answer names what failed whatever the model wrote."""
    tools = report.get("tools")
    if not tools:
        return ""
    lines = [f"- MCP server {name} unavailable: {why}" for name, why in tools["servers_failed"].items()]
    for tool, statuses in tools["by_tool"].items():
        bad = {k: v for k, v in statuses.items() if k != "ok"}
        if bad:
            lines.append(f"- tool {tool}: " + ", ".join(f"{n} call(s) {k}" for k, v in bad.items() for n in [v]))
    return ("---\nTool problems:\n" + "\n".join(lines)) if lines else ""
