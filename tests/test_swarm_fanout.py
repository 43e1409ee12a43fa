"""The fan-out decision and the budget ledger, without HTTP."""

from __future__ import annotations

from router.swarm.fanout import Estimates, plan_fanout
from router.swarm.ledger import BudgetLedger
from router.swarm.plan import Plan, Subtask, dag_levels

EST = Estimates(per_subtask_usd=0.001, aggregator_usd=0.002, worker_ms=1_000, aggregator_ms=2_000)


def plan_of(subtasks: list[Subtask]) -> Plan:
    return Plan(subtasks, dag_levels(subtasks), len(subtasks))


def independent(n: int) -> Plan:
    return plan_of([Subtask(f"t{i}", f"item {i}") for i in range(1, n + 1)])


def test_nothing_binds_one_agent_per_subtask() -> None:
    fan = plan_fanout(independent(30), EST, money_left=1.0, time_left_ms=60_000, capacity=32, max_agents=100)
    assert len(fan.agents) == 30 and fan.batch_size == 1 and not fan.skipped and fan.binding == "plan"
    assert [a.ids for a in fan.agents[:3]] == ["t1", "t2", "t3"]


def test_the_ceiling_bounds_the_work_and_names_what_is_skipped() -> None:
    # $0.0075 left: $0.002 held for aggregation, $0.001 per subtask -> 5 subtasks
    fan = plan_fanout(independent(30), EST, money_left=0.0075, time_left_ms=60_000, capacity=32, max_agents=100)
    assert len(fan.agents) == 5 and fan.binding == "cost" and fan.bounds["cost"] == 5
    assert [sid for sid, _ in fan.skipped] == [f"t{i}" for i in range(6, 31)]
    assert all(why.startswith("budget") for _, why in fan.skipped)


def test_max_agents_batches_same_level_subtasks() -> None:
    fan = plan_fanout(independent(150), EST, money_left=1.0, time_left_ms=600_000, capacity=100, max_agents=100)
    assert len(fan.agents) == 75 and fan.batch_size == 2 and fan.binding == "max_agents"
    assert fan.agents[0].ids == "t1+t2"
    assert any("batched 150 subtasks into 75 agents" in r for r in fan.reasons)


def test_latency_budget_and_capacity_bound_the_parallelism() -> None:
    # 5.5 s left, 2 s for the aggregator: 3 waves of 1 s x capacity 4 = 12 agents for 30 subtasks
    fan = plan_fanout(independent(30), EST, money_left=1.0, time_left_ms=5_500, capacity=4, max_agents=100)
    assert fan.bounds["latency"] == 12 and len(fan.agents) <= 12 and fan.binding == "latency"
    assert sum(len(a.subtasks) for a in fan.agents) == 30  # batched, not dropped


def test_dependencies_map_to_agents_and_are_never_batched_with_their_inputs() -> None:
    plan = plan_of([Subtask("a", "x"), Subtask("b", "y"), Subtask("c", "z", ("a", "b")), Subtask("d", "w")])
    fan = plan_fanout(plan, EST, money_left=1.0, time_left_ms=60_000, capacity=2, max_agents=2)
    by_ids = {a.ids: a for a in fan.agents}
    assert set(by_ids) == {"a+b+d", "c"}
    assert by_ids["c"].depends_on == (by_ids["a+b+d"].index,)
    cheap = plan_fanout(plan, EST, money_left=0.0045, time_left_ms=60_000, capacity=8, max_agents=8)
    assert [a.ids for a in cheap.agents] == ["a", "b"]  # c needs a and b; d comes after them in level order
    assert dict(cheap.skipped)["c"].startswith("budget")


def test_ledger_reserves_settles_and_refuses() -> None:
    ledger = BudgetLedger(0.01)
    first = ledger.reserve(0.006)
    assert first is not None and ledger.remaining == 0.004
    assert ledger.reserve(0.005) is None and ledger.refused == 1
    ledger.settle(first, 0.002)
    ledger.settle(first, 0.002)  # settling twice books once
    assert ledger.spent == 0.002 and ledger.reserved == 0 and ledger.remaining == 0.008
    second = ledger.reserve(0.008)
    assert second is not None
    ledger.release(second)
    assert ledger.spent == 0.002 and round(ledger.remaining, 9) == 0.008
    assert ledger.reserve(0.0) is not None  # a free backend's call always fits


def test_free_backends_fan_out_fully() -> None:
    free = Estimates(per_subtask_usd=0.0, aggregator_usd=0.0, worker_ms=1_000, aggregator_ms=1_000)
    fan = plan_fanout(independent(30), free, money_left=0.0, time_left_ms=60_000, capacity=32, max_agents=100)
    assert len(fan.agents) == 30 and not fan.skipped
