"""The plan, without HTTP: schema validation, the one repair, duplicate merging, cycles and levels."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from router.swarm.plan import (
    PlanFailed,
    PlanInvalid,
    Subtask,
    break_cycles,
    dag_levels,
    find_cycle,
    make_plan,
    merge_duplicates,
    parse_plan,
)


def plan_json(*subtasks: tuple[str, str, list[str]]) -> str:
    return orjson.dumps({"subtasks": [{"id": i, "instruction": t, "depends_on": d} for i, t, d in subtasks]}).decode()


def test_parse_accepts_fences_numbers_and_the_dependencies_alias() -> None:
    text = "Here you go:\n```json\n" + orjson.dumps({"subtasks": [
        {"id": 1, "instruction": " a ", "dependencies": []},
        {"id": "2", "instruction": "b", "depends_on": [1, 1], "extra": "ignored"}]}).decode() + "\n```"
    assert parse_plan(text) == [Subtask("1", "a"), Subtask("2", "b", ("1",))]


@pytest.mark.parametrize(("text", "problem"), [
    ("no json here", "no JSON object"),
    ("{not json}", "not valid JSON"),
    ('{"tasks": []}', "subtasks: Field required"),
    ('{"subtasks": []}', "subtasks: List should have at least 1 item"),
    ('{"subtasks": [{"id": "t1"}]}', "subtasks.0.instruction: Field required"),
    (plan_json(("t1", "a", []), ("t1", "b", [])), "repeated: t1"),
    (plan_json(("t1", "a", ["t9"])), "unknown id(s) t9"),
    (plan_json(("t1", "a", ["t1"])), "depends on itself"),
])
def test_parse_names_each_problem(text: str, problem: str) -> None:
    with pytest.raises(PlanInvalid, match=problem.replace("(", r"\(").replace(")", r"\)")):
        parse_plan(text)


def test_near_duplicates_merge_but_different_items_stay() -> None:
    subtasks = [Subtask("t1", "Summarise Dune."), Subtask("t2", "Write a note on Lisbon"),
                Subtask("t3", "summarise   DUNE", ("t2",)), Subtask("t4", "Write a note on Porto", ("t3",))]
    kept, merged = merge_duplicates(subtasks)
    assert merged == {"t3": "t1"}
    assert [s.id for s in kept] == ["t1", "t2", "t4"]
    assert kept[0].depends_on == ("t2",)  # inherited from the dropped duplicate
    assert kept[2].depends_on == ("t1",)  # rewired to the kept one


def test_cycles_are_found_and_broken_and_levels_follow_dependencies() -> None:
    subtasks = [Subtask("a", "x", ("c",)), Subtask("b", "y", ("a",)), Subtask("c", "z", ("b",)),
                Subtask("d", "w", ("a",))]
    assert find_cycle(subtasks) == ["a", "c", "b", "a"]
    acyclic, cycle = break_cycles(subtasks)
    assert cycle == ["a", "c", "b", "a"] and find_cycle(acyclic) is None
    assert [s.depends_on for s in acyclic] == [(), (), (), ("a",)]
    chain = [Subtask("a", "x"), Subtask("b", "y", ("a",)), Subtask("c", "z", ("a", "b")), Subtask("d", "w")]
    assert dag_levels(chain) == {"a": 0, "b": 1, "c": 2, "d": 0}


async def test_make_plan_repairs_once_then_gives_up() -> None:
    asked: list[list[dict[str, Any]]] = []
    replies = iter(["Sure! Here is my plan: first A, then B.", plan_json(("t1", "A", []), ("t2", "B", ["t1"]))])

    async def ask(messages: list[dict[str, Any]]) -> str:
        asked.append(messages)
        return next(replies)

    plan = await make_plan(ask, [{"role": "user", "content": "Do A and B"}], max_agents=10)
    assert plan.repaired and [s.id for s in plan.subtasks] == ["t1", "t2"] and plan.depth == 2
    assert "model-router swarm planner" in asked[0][0]["content"] and "at most 10 subtasks" in asked[0][0]["content"]
    repair = asked[1]
    assert repair[-2] == {"role": "assistant", "content": "Sure! Here is my plan: first A, then B."}
    assert "no JSON object" in repair[-1]["content"]

    async def garbage(messages: list[dict[str, Any]]) -> str:
        return "still not a plan"

    with pytest.raises(PlanFailed, match="after one repair attempt"):
        await make_plan(garbage, [{"role": "user", "content": "Do A and B"}], max_agents=10)


async def test_a_cyclic_plan_is_not_repaired_but_run_without_the_cycle() -> None:
    calls = 0

    async def ask(messages: list[dict[str, Any]]) -> str:
        nonlocal calls
        calls += 1
        return plan_json(("t1", "A", ["t2"]), ("t2", "B", ["t1"]), ("t3", "C", ["t1"]))

    plan = await make_plan(ask, [{"role": "user", "content": "A, B, C"}], max_agents=10)
    assert calls == 1 and plan.cycle == ["t1", "t2", "t1"] and not plan.repaired
    assert plan.levels == {"t1": 0, "t2": 0, "t3": 1}
    assert any("dependency cycle t1 -> t2 -> t1" in note for note in plan.notes)
