"""A decision explained: for ``POST /v1/route`` (JSON) and ``model-router route`` (a table)."""

from __future__ import annotations

from typing import Any

from router.exchange import Routed


def explain_decision(routed: Routed) -> dict[str, Any]:
    decision = routed.decision
    chosen = decision.chosen
    out: dict[str, Any] = {
        "object": "router.decision",
        "request_id": routed.request_id,
        "task_type": routed.label.task_type,
        "confidence": round(routed.label.confidence, 4),
        "probabilities": {k: round(v, 4) for k, v in routed.probabilities.items()},
        "rule": routed.rule,
        "answer_length": routed.label.answer_length,
        "subtasks": routed.label.subtasks,
        "input_tokens": routed.facts.input_tokens,
        "limits": {"max_cost_usd": decision.limits.max_cost_usd,
                   "latency_budget_ms": decision.limits.latency_budget_ms},
        "objective": decision.objective,
        "policy": {"name": routed.loaded.policy.name, "version": routed.loaded.policy.version},
        "candidates": [c.as_dict() for c in decision.candidates],
        "choice": chosen.route if chosen else None,
        "best_effort": decision.best_effort,
        "fallbacks": [c.route for c in decision.fallbacks],
        "decision_ms": round(routed.decision_ms, 3),
        "feasible": chosen is not None,
    }
    if chosen is None:
        out["rejection"] = decision.explain_rejections()
        # What a real request would get: 503 (retry later) or 400 route_infeasible.
        out["unavailable"] = decision.unavailable
    swarm = next((c for c in decision.candidates if c.swarm_agents is not None), None)
    if swarm is not None:
        cfg = routed.loaded.policy.swarm
        out["swarm"] = {"agents_planned": swarm.swarm_agents, "subtasks_estimated": routed.label.subtasks,
                        "max_agents": cfg.max_agents, "concurrency": cfg.concurrency,
                        "planner": cfg.planner, "worker": cfg.worker, "aggregator": cfg.aggregator,
                        "notes": list(swarm.details)}
    return out


def format_table(explained: dict[str, Any]) -> str:
    """The dry run for a person: label, limits, one row per candidate, the choice and chain."""
    lines = [
        f"task type   {explained['task_type']} (confidence {explained['confidence']:.2f}"
        + (f", rule: {explained['rule']}" if explained.get("rule") else "") + ")",
        f"limits      ceiling ${explained['limits']['max_cost_usd']:g}, "
        f"budget {explained['limits']['latency_budget_ms']:g} ms, objective {explained['objective']}",
        "",
        f"{'route':<20} {'est. cost $':>12} {'est. ms':>10} {'quality':>8}  verdict",
    ]
    fallbacks = explained["fallbacks"]
    for c in explained["candidates"]:
        if c["route"] == explained["choice"]:
            verdict = "CHOSEN"
        elif c["route"] in fallbacks:
            verdict = f"fallback {fallbacks.index(c['route']) + 1}"
        elif c["feasible"]:
            verdict = "ok"
        else:
            verdict = "rejected: " + "; ".join(f"{r} ({w})" for r, w in zip(c["rejected_because"], c["why"],
                                                                           strict=True))
        if c["notes"]:
            verdict += " [" + "; ".join(c["notes"]) + "]"
        lines.append(f"{c['route']:<20} {c['estimated_cost_usd']:>12.6f} {c['estimated_latency_ms']:>10.0f} "
                     f"{c['quality']:>8.2f}  {verdict}")
    lines.append("")
    lines.append(f"choice      {explained['choice'] or 'none (infeasible)'}"
                 + (" (best effort)" if explained.get("best_effort") else ""))
    lines.append(f"fallbacks   {' -> '.join(fallbacks) or '-'}")
    if explained.get("rejection"):
        lines.append(f"why none    {explained['rejection']}")
    if "swarm" in explained:
        s = explained["swarm"]
        lines.append(f"swarm       {s['agents_planned']} agents planned (max {s['max_agents']}, "
                     f"{s['concurrency']} at once)")
    return "\n".join(lines)
