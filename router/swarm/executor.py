"""Run the sub-agents: one task group, capacity limiters, a deadline and a retry per agent.

Every agent is a task in one ``asyncio.TaskGroup`` from the start; it waits for the agents it
depends on (so a dependent starts the moment its inputs are ready, not at the end of a wave),
then for a slot in every limiter it needs (the run's own ``swarm.concurrency`` and the backend's
process-wide pool), then reserves its money in the ledger and calls. A failure is an outcome,
never an exception that tears the group down; only cancellation (a client disconnect) propagates,
and it cancels every agent — and with it every upstream call in flight.

Outcomes are collected as ``(index, result | error)`` in ``AgentOutcome``; ``on_done`` is told
about each as it lands (streamed progress).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from router import errors
from router.dispatch.upstream import Usage
from router.swarm.fanout import AgentSpec
from router.swarm.ledger import BudgetLedger

Status = Literal["ok", "failed", "skipped"]


@dataclass(slots=True)
class CallResult:
    """What one successful upstream call of an agent produced."""

    text: str
    usage: Usage
    cost_usd: float
    model: str | None
    failed_attempts: int = 0  # failed upstream attempts inside the dispatcher (its own retries)
    extra_cost_usd: float = 0.0  # tool calls and later agent-loop steps, already settled in the ledger
    steps: int = 1  # model calls of the agent loop
    tool_calls: list[Any] = field(default_factory=list)  # ``tools.ToolOutcome`` per MCP call
    stopped: str | None = None  # why an agent loop ended early


@dataclass(slots=True)
class AgentOutcome:
    spec: AgentSpec
    status: Status
    text: str = ""
    error: str | None = None
    started: float | None = None  # perf_counter when the first call began (slot held)
    ended: float | None = None
    attempts: int = 0
    failed_attempts: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    model: str | None = None
    steps: int = 0
    tool_calls: list[Any] = field(default_factory=list)
    stopped: str | None = None

    @property
    def duration_ms(self) -> float:
        if self.started is None or self.ended is None:
            return 0.0
        return (self.ended - self.started) * 1000


# (agent, results of the agents it depends on, money it may spend) -> result
AgentCall = Callable[[AgentSpec, Sequence["AgentOutcome"], float], Awaitable[CallResult]]
# (agent, results it depends on) -> the money to reserve for one attempt
AgentPrice = Callable[[AgentSpec, Sequence["AgentOutcome"]], float]


class AgentExecutor:
    def __init__(self, *, call: AgentCall, price: AgentPrice, ledger: BudgetLedger,
                 limiters: Callable[[AgentSpec], Sequence[asyncio.Semaphore]], timeout_s: float, retries: int = 1,
                 on_done: Callable[[AgentOutcome], None] | None = None) -> None:
        self._call = call
        self._price = price
        self._ledger = ledger
        self._limiters = limiters  # per agent: the run's own limiter and its route's backend pool
        self._timeout_s = timeout_s
        self._retries = retries
        self._on_done = on_done

    async def run(self, agents: Sequence[AgentSpec]) -> list[AgentOutcome]:
        ready = [asyncio.Event() for _ in agents]
        outcomes: list[AgentOutcome | None] = [None] * len(agents)

        async def agent(spec: AgentSpec) -> None:
            for dep in spec.depends_on:
                await ready[dep].wait()
            inputs = [outcomes[d] for d in spec.depends_on]
            missing = [o for o in inputs if o is None or o.status != "ok"]
            if missing:
                names = ", ".join(o.spec.ids for o in missing if o is not None)
                outcome = AgentOutcome(spec, "skipped", error=f"a subtask it depends on did not finish ({names})")
            else:
                outcome = await self._one(spec, [o for o in inputs if o is not None])
            outcomes[spec.index] = outcome
            ready[spec.index].set()
            if self._on_done is not None:
                self._on_done(outcome)

        async with asyncio.TaskGroup() as group:
            for spec in agents:
                group.create_task(agent(spec), name=f"swarm-agent-{spec.index}")
        return [o for o in outcomes if o is not None]

    async def _one(self, spec: AgentSpec, inputs: list[AgentOutcome]) -> AgentOutcome:
        outcome = AgentOutcome(spec, "failed")
        async with contextlib.AsyncExitStack() as slots:
            for limiter in self._limiters(spec):
                await slots.enter_async_context(limiter)
            outcome.started = time.perf_counter()
            # The retry stays in the slot: a retried agent does not queue behind the others again.
            for attempt in range(1 + self._retries):
                reservation = self._ledger.reserve(self._price(spec, inputs))
                if reservation is None:
                    if attempt == 0:
                        outcome.status = "skipped"
                        outcome.error = "budget: the cost ceiling cannot pay for another agent"
                    break
                outcome.attempts += 1
                try:
                    async with asyncio.timeout(self._timeout_s):
                        result = await self._call(spec, inputs, reservation.amount)
                except TimeoutError:
                    outcome.error = f"timeout: no answer within agent_timeout_s={self._timeout_s:g}"
                    outcome.failed_attempts += 1
                except errors.InvalidRequest as exc:  # the upstream rejected the request: a retry cannot help
                    outcome.error = f"{exc.type}: {exc.message}"
                    outcome.failed_attempts += 1
                    break
                except errors.RouterError as exc:
                    outcome.error = f"{exc.instance_code or exc.type}: {exc.message}"
                    outcome.failed_attempts += 1
                except Exception as exc:  # a bug must not take the other agents down with it
                    outcome.error = f"internal error: {type(exc).__name__}: {exc}"
                    outcome.failed_attempts += 1
                    break
                else:
                    self._ledger.settle(reservation, result.cost_usd)
                    outcome.status, outcome.error = "ok", None
                    outcome.text, outcome.usage = result.text, result.usage
                    outcome.cost_usd = result.cost_usd + result.extra_cost_usd
                    outcome.model, outcome.steps, outcome.stopped = result.model, result.steps, result.stopped
                    outcome.tool_calls = result.tool_calls
                    outcome.failed_attempts += result.failed_attempts
                    break
                finally:
                    self._ledger.release(reservation)  # no-op once settled; frees it on failure or cancel
            outcome.ended = time.perf_counter()
        return outcome
