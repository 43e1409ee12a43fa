"""Aggregation: the sub-agents' results, in plan order, merged by one call into the final answer.

What failed or was skipped is named twice: in the aggregator's input (so the merged text can say
which part is missing) and in a fixed footer the gateway appends, so the client always learns it
whatever the model writes. If the aggregator itself fails (or the money is gone), the answer is the
results joined in plan order — the work already paid for is not thrown away.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from router.swarm.executor import AgentOutcome
from router.swarm.plan import Subtask


@dataclass(frozen=True, slots=True)
class Missing:
    """A subtask without a result, and why."""

    subtask: Subtask
    status: str  # failed | skipped
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.subtask.id, "status": self.status, "reason": self.reason,
                "instruction": _short(self.subtask.instruction, 160)}


def _short(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit].rstrip() + "…"


def sections(subtasks: Sequence[Subtask], outcomes: Sequence[AgentOutcome],
             missing: Sequence[Missing]) -> list[tuple[str, str]]:
    """(title, body) per subtask in plan order; a batched agent's answer goes under its first subtask."""
    result_of: dict[str, str] = {}
    batched_into: dict[str, str] = {}
    for outcome in outcomes:
        if outcome.status == "ok":
            first = outcome.spec.subtasks[0].id
            result_of[first] = outcome.text
            for s in outcome.spec.subtasks[1:]:
                batched_into[s.id] = first
    gone = {m.subtask.id: m for m in missing}
    out: list[tuple[str, str]] = []
    for s in subtasks:
        title = f"{s.id}: {_short(s.instruction, 120)}"
        if s.id in result_of:
            out.append((title, result_of[s.id]))
        elif s.id in batched_into:
            out.append((title, f"(answered together with {batched_into[s.id]}, above)"))
        elif s.id in gone:
            out.append((f"{title} — NO RESULT", f"(no result: this subtask {gone[s.id].status}: "
                                                  f"{gone[s.id].reason})"))
    return out


def fallback_answer(parts: list[tuple[str, str]]) -> str:
    """The results joined in plan order, when no aggregator answer could be had."""
    return "\n\n".join(f"### {title}\n{body.strip()}" for title, body in parts)


def footer(missing: Sequence[Missing], total: int) -> str:
    if not missing:
        return ""
    lines = [f"---\nPartial answer: {len(missing)} of {total} subtasks have no result:"]
    lines += [f"- {m.subtask.id} ({m.status}): {_short(m.subtask.instruction, 100)} — {m.reason}" for m in missing]
    return "\n".join(lines)
