"""The sub-agent executor, without HTTP: dependency scheduling, limits, deadlines, retries, budget, cancel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from router import errors
from router.dispatch.upstream import Usage
from router.swarm.executor import AgentExecutor, AgentOutcome, CallResult
from router.swarm.fanout import AgentSpec
from router.swarm.ledger import BudgetLedger
from router.swarm.plan import Subtask


def spec(index: int, *deps: int, level: int = 0) -> AgentSpec:
    return AgentSpec(index, (Subtask(f"t{index + 1}", f"do {index + 1}"),), deps, level)


class Fake:
    """An upstream where agent i takes ``delays[i]`` seconds; records start times and concurrency."""

    def __init__(self, delays: dict[int, float], fail: set[int] | None = None, cost_share: float = 0.5) -> None:
        self.delays = delays
        self.cost_share = cost_share
        self.fail = fail or set()
        self.t0 = time.perf_counter()
        self.started: dict[int, float] = {}
        self.calls: list[int] = []
        self.running = 0
        self.peak = 0
        self.inputs: dict[int, list[str]] = {}

    async def __call__(self, agent: AgentSpec, inputs: Sequence[AgentOutcome], money: float) -> CallResult:
        self.calls.append(agent.index)
        self.started.setdefault(agent.index, time.perf_counter() - self.t0)
        self.inputs[agent.index] = [o.text for o in inputs]
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(self.delays.get(agent.index, 0.01))
        finally:
            self.running -= 1
        if agent.index in self.fail:
            raise errors.UpstreamFailed("Every route failed (kimi: http_5xx).")
        return CallResult(f"answer {agent.index}", Usage(10, 0, 20), money * self.cost_share, "m")


def executor(fake: Fake, *, ceiling: float = 1.0, price: float = 0.01, capacity: int = 10,
             timeout_s: float = 5.0) -> tuple[AgentExecutor, BudgetLedger]:
    ledger = BudgetLedger(ceiling)
    limiter = asyncio.Semaphore(capacity)
    run = AgentExecutor(call=fake, price=lambda a, i: price, ledger=ledger, limiters=lambda spec: [limiter],
                        timeout_s=timeout_s, retries=1)
    return run, ledger


async def test_a_dependent_starts_when_its_inputs_are_ready_not_at_the_end_of_a_wave() -> None:
    fake = Fake({0: 0.05, 1: 0.3, 2: 0.05})
    run, _ = executor(fake)
    outcomes = await run.run([spec(0), spec(1), spec(2, 0, level=1)])
    assert [o.status for o in outcomes] == ["ok", "ok", "ok"]
    assert 0.04 <= fake.started[2] < 0.2  # after agent 0 (50 ms), long before agent 1 (300 ms)
    assert fake.inputs[2] == ["answer 0"]


async def test_capacity_limits_agents_in_flight() -> None:
    fake = Fake({i: 0.05 for i in range(12)})
    run, _ = executor(fake, capacity=4)
    started = time.perf_counter()
    await run.run([spec(i) for i in range(12)])
    assert fake.peak == 4
    assert 0.14 <= time.perf_counter() - started < 0.3  # three waves of 50 ms


async def test_a_deadline_then_one_retry_then_failure_and_dependents_are_skipped() -> None:
    fake = Fake({0: 1.0, 1: 0.01})
    run, ledger = executor(fake, timeout_s=0.05)
    outcomes = await run.run([spec(0), spec(1), spec(2, 0, level=1)])
    slow, fine, dependent = outcomes
    assert slow.status == "failed" and slow.attempts == 2 and "agent_timeout_s=0.05" in (slow.error or "")
    assert fine.status == "ok"
    assert dependent.status == "skipped" and "t1" in (dependent.error or "") and dependent.attempts == 0
    assert fake.calls.count(0) == 2
    assert ledger.reserved == 0 and ledger.spent == pytest.approx(0.005)  # only the answer is paid for


async def test_an_upstream_error_is_retried_once_and_collected_not_raised() -> None:
    fake = Fake({}, fail={1})
    run, _ = executor(fake)
    outcomes = await run.run([spec(0), spec(1), spec(2)])
    assert [o.status for o in outcomes] == ["ok", "failed", "ok"]
    assert outcomes[1].attempts == 2 and "upstream_error" in (outcomes[1].error or "")


async def test_spawning_stops_when_the_remainder_cannot_pay() -> None:
    fake = Fake({}, cost_share=1.0)  # every agent spends all it reserved
    run, ledger = executor(fake, ceiling=0.035, price=0.01, capacity=1)
    outcomes = await run.run([spec(i) for i in range(6)])
    assert [o.status for o in outcomes] == ["ok"] * 3 + ["skipped"] * 3
    assert all((o.error or "").startswith("budget") for o in outcomes[3:])
    assert fake.calls == [0, 1, 2] and ledger.spent == pytest.approx(0.03) and ledger.spent <= ledger.ceiling


async def test_cancelling_the_run_cancels_every_agent() -> None:
    fake = Fake({i: 10.0 for i in range(5)})
    run, ledger = executor(fake)
    task = asyncio.create_task(run.run([spec(i) for i in range(5)]))
    await asyncio.sleep(0.05)
    assert fake.running == 5
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.running == 0 and ledger.reserved == 0
