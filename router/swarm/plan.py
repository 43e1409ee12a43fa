"""The plan: the planner's JSON, validated against a schema, repaired once, de-duplicated, made a DAG.

    {"subtasks": [{"id": "t1", "instruction": "...", "depends_on": []}, ...]}

``make_plan`` asks the planner (through a callable, so this module knows nothing of upstreams),
parses and validates the reply, and on a schema error asks once more with the problem spelled out;
a second bad reply is a ``PlanFailed``. Near-duplicate subtasks (same content words) are merged.
A dependency cycle is not sent back for repair: its edges are dropped (the members run without
those inputs) and the fact is reported — the swarm never waits on a cycle.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from router.swarm.prompts import planner_messages, repair_message

MAX_SUBTASKS = 1_000  # a plan this long is a runaway planner, not a plan
Ask = Callable[[list[dict[str, Any]]], Awaitable[str]]


class PlanInvalid(ValueError):
    """The planner's reply is not a valid plan; the message says why (and is shown to the planner)."""


class PlanFailed(Exception):
    """No valid plan after the repair attempt."""


class _SubtaskModel(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=64)
    instruction: str = Field(min_length=1)
    depends_on: list[str] = Field(default_factory=list,
                                  validation_alias=AliasChoices("depends_on", "dependencies"))


class _PlanModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    subtasks: list[_SubtaskModel] = Field(min_length=1, max_length=MAX_SUBTASKS)


PLAN_SCHEMA: dict[str, Any] = _PlanModel.model_json_schema()


@dataclass(frozen=True, slots=True)
class Subtask:
    id: str
    instruction: str
    depends_on: tuple[str, ...] = ()


@dataclass(slots=True)
class Plan:
    subtasks: list[Subtask]  # plan order, duplicates merged, acyclic
    levels: dict[str, int]  # 0 for subtasks without dependencies, else 1 + deepest dependency
    planned: int  # subtasks in the planner's reply, before merging
    repaired: bool = False
    merged: dict[str, str] = field(default_factory=dict)  # dropped id -> id it was merged into
    cycle: list[str] | None = None  # the cycle found (and broken), e.g. ["t1", "t3", "t1"]
    notes: list[str] = field(default_factory=list)

    @property
    def depth(self) -> int:
        return 1 + max(self.levels.values(), default=0)


# --- parsing and validation --------------------------------------------------------------------
def _json_text(text: str) -> str:
    """The JSON object in a reply that may wrap it in a code fence or a sentence."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise PlanInvalid("the reply contains no JSON object")
    return text[start:end + 1]


def parse_plan(text: str) -> list[Subtask]:
    """Subtasks of a reply; ``PlanInvalid`` naming each problem and where it is."""
    try:
        data = orjson.loads(_json_text(text))
    except orjson.JSONDecodeError as exc:
        raise PlanInvalid(f"the reply is not valid JSON ({exc})") from None
    try:
        model = _PlanModel.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'plan'}: {e['msg']}" for e in exc.errors())
        raise PlanInvalid(f"the JSON does not match the plan schema ({problems})") from None
    ids = [s.id for s in model.subtasks]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise PlanInvalid(f"subtask ids must be unique; repeated: {', '.join(dupes)}")
    known = set(ids)
    for s in model.subtasks:
        unknown = [d for d in s.depends_on if d not in known]
        if unknown:
            raise PlanInvalid(f"subtask {s.id} depends on unknown id(s) {', '.join(unknown)}")
        if s.id in s.depends_on:
            raise PlanInvalid(f"subtask {s.id} depends on itself")
    return [Subtask(s.id, s.instruction, tuple(dict.fromkeys(s.depends_on))) for s in model.subtasks]


# --- near-duplicates ---------------------------------------------------------------------------
_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset("a an the and or of to in on for with is are be this that these those please each "
                  "its it as by at from about".split())


def _content_words(text: str) -> frozenset[str]:
    words = (w.lower() for w in _WORD.findall(text))
    return frozenset(w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words if w not in _STOP)


def merge_duplicates(subtasks: list[Subtask]) -> tuple[list[Subtask], dict[str, str]]:
    """Merge subtasks with the same content words (case, punctuation, order, stop words aside).

    Deliberately conservative: "note on Lisbon" and "note on Porto" differ by a content word and
    both stay. A merged subtask keeps the first one's id and inherits the other's dependencies;
    whoever depended on the dropped one now depends on the kept one.
    """
    first: dict[frozenset[str], str] = {}
    merged: dict[str, str] = {}
    for s in subtasks:
        key = _content_words(s.instruction)
        if key and key in first:
            merged[s.id] = first[key]
        elif key:
            first[key] = s.id
    if not merged:
        return subtasks, merged
    extra: dict[str, list[str]] = {}
    for s in subtasks:
        if s.id in merged:
            extra.setdefault(merged[s.id], []).extend(s.depends_on)
    out: list[Subtask] = []
    for s in subtasks:
        if s.id in merged:
            continue
        deps = [merged.get(d, d) for d in (*s.depends_on, *extra.get(s.id, ()))]
        out.append(Subtask(s.id, s.instruction, tuple(d for d in dict.fromkeys(deps) if d != s.id)))
    return out, merged


# --- the DAG -----------------------------------------------------------------------------------
def find_cycle(subtasks: list[Subtask]) -> list[str] | None:
    """One dependency cycle as a path that ends where it starts, or None for a DAG."""
    deps = {s.id: s.depends_on for s in subtasks}
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    for root in deps:
        if state.get(root):
            continue
        path: list[str] = [root]
        iters = [iter(deps[root])]
        state[root] = 1
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(deps[nxt]))
    return None


def break_cycles(subtasks: list[Subtask]) -> tuple[list[Subtask], list[str] | None]:
    """Drop the edges of every cycle (the first one found is returned for the report)."""
    first: list[str] | None = None
    while (cycle := find_cycle(subtasks)) is not None:
        first = first or cycle
        edges = set(itertools.pairwise(cycle))  # (dependent, dependency)
        subtasks = [Subtask(s.id, s.instruction, tuple(d for d in s.depends_on if (s.id, d) not in edges))
                    for s in subtasks]
    return subtasks, first


def dag_levels(subtasks: list[Subtask]) -> dict[str, int]:
    """Level of each subtask in an acyclic plan: 0 without dependencies, else 1 + deepest one."""
    deps = {s.id: s.depends_on for s in subtasks}
    levels: dict[str, int] = {}
    for root in deps:
        stack = [root]
        while stack:
            node = stack[-1]
            pending = [d for d in deps[node] if d not in levels]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            levels[node] = 1 + max((levels[d] for d in deps[node]), default=-1)
    return levels


def _finish(subtasks: list[Subtask], *, repaired: bool) -> Plan:
    planned = len(subtasks)
    subtasks, merged = merge_duplicates(subtasks)
    subtasks, cycle = break_cycles(subtasks)
    plan = Plan(subtasks, dag_levels(subtasks), planned, repaired=repaired, merged=merged, cycle=cycle)
    if repaired:
        plan.notes.append("the first plan was invalid; the repaired plan was used")
    if merged:
        plan.notes.append("merged near-duplicate subtasks: "
                          + ", ".join(f"{d} into {k}" for d, k in merged.items()))
    if cycle:
        plan.notes.append(f"dependency cycle {' -> '.join(cycle)}: its dependencies were dropped, "
                          "those subtasks ran without each other's results")
    return plan


async def make_plan(ask: Ask, request: list[dict[str, Any]], *, max_agents: int) -> Plan:
    """Ask the planner; on an invalid reply ask once more with the problem; else ``PlanFailed``."""
    messages = planner_messages(request, max_agents=max_agents)
    reply = await ask(messages)
    try:
        return _finish(parse_plan(reply), repaired=False)
    except PlanInvalid as exc:
        problem = str(exc)
    repair = [*messages, {"role": "assistant", "content": reply}, repair_message(problem)]
    second = await ask(repair)
    try:
        return _finish(parse_plan(second), repaired=True)
    except PlanInvalid as exc:
        raise PlanFailed(f"The swarm planner did not return a valid plan after one repair attempt "
                         f"(first reply: {problem}; repair: {exc}).") from None
