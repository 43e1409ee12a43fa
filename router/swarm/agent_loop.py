"""A sub-agent that can act: a bounded loop of model calls and MCP tool calls.

    call the model (with the MCP tools) ─► tool calls? ─► run them (MCP) ─► append results ─► again
                                         └─ no: that is the answer

Bounds: ``swarm.tools.max_steps`` model calls (the last one is told ``tool_choice: "none"`` so it
answers with what it has), ``max_calls_per_step`` tool calls per step, ``tool_timeout_s`` per tool
call (never beyond the swarm's deadline), ``agent_max_tokens`` tokens over all steps. Money: the
first step spends the executor's reservation; every later step reserves its own price in the
ledger and every tool call its ``cost_per_call_usd`` — what does not fit ends the loop, it is never
overspent. A tool failure is a result the model reads (``ToolOutcome.text``); nothing a tool returns
is executed by the gateway, only shown to the model as a ``tool`` message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from router.dispatch.executor import Answer
from router.dispatch.upstream import Usage
from router.observability.metrics import RouterMetrics
from router.observability.tracing import Tracer
from router.policy.model import SwarmTools
from router.swarm.ledger import BudgetLedger
from router.swarm.tools import RunTools, ToolOutcome

# (body, money) -> the dispatcher's answer for one step on the agent's route
StepCall = Callable[[dict[str, Any], float], Awaitable[Answer]]
# body -> the money one step with that body may spend (its reservation)
StepPrice = Callable[[dict[str, Any]], float]


@dataclass(slots=True)
class LoopResult:
    text: str
    usage: Usage
    first_cost_usd: float  # settled by the executor against its reservation
    extra_cost_usd: float  # later steps and tool calls, already settled in the ledger here
    model: str | None
    failed_attempts: int
    steps: int
    tool_calls: list[ToolOutcome] = field(default_factory=list)
    stopped: str | None = None  # why the loop ended early (max_steps, token cap, budget, deadline)


def _message(answer: Answer) -> dict[str, Any]:
    choices = answer.response.get("choices") or [{}]
    return dict(choices[0].get("message") or {})


class AgentLoop:
    def __init__(self, *, tools: RunTools, limits: SwarmTools, ledger: BudgetLedger, tracer: Tracer,
                 metrics: RouterMetrics, deadline: float) -> None:
        self.tools = tools
        self.limits = limits
        self.ledger = ledger
        self.tracer = tracer
        self.metrics = metrics
        self.deadline = deadline  # perf_counter: the fan-out must be done by then

    async def run(self, body: dict[str, Any], money: float, call: StepCall, price: StepPrice) -> LoopResult:
        messages = list(body["messages"])
        offered = self.tools.openai_tools()
        step_body = {**body, "tools": offered, "tool_choice": "none" if self.limits.max_steps == 1 else "auto"}
        answer = await call(step_body, money)
        usage = Usage()
        usage.add(answer.usage)
        result = LoopResult("", usage, answer.cost_usd, 0.0, answer.response.get("model"), answer.log.failed, 1)
        while True:
            message = _message(answer)
            calls = [c for c in message.get("tool_calls") or [] if isinstance(c, dict)]
            result.text = str(message.get("content") or "")
            if not calls:
                return result
            if result.steps >= self.limits.max_steps:
                result.stopped = f"max_steps={self.limits.max_steps} reached with tool calls pending"
                break
            used = usage.input_tokens + usage.output_tokens
            if used >= self.limits.agent_max_tokens:
                result.stopped = f"agent_max_tokens={self.limits.agent_max_tokens} reached ({used} used)"
                break
            messages.append({"role": "assistant", "content": message.get("content") or "", "tool_calls": calls})
            paid = await self._run_calls(calls)
            outcomes = [o for o, _ in paid]
            result.tool_calls += outcomes
            result.extra_cost_usd += sum(cost for _, cost in paid)
            messages += [{"role": "tool", "tool_call_id": str(c.get("id")), "content": o.text}
                         for c, o in zip(calls, outcomes, strict=True)]
            last = result.steps + 1 >= self.limits.max_steps
            step_body = {**body, "messages": messages, "tools": offered, "tool_choice": "none" if last else "auto",
                         "max_tokens": max(16, self.limits.agent_max_tokens - used)}
            reservation = self.ledger.reserve(price(step_body))
            if reservation is None:
                result.stopped = "budget: the ceiling cannot pay for another step"
                break
            try:
                answer = await call(step_body, reservation.amount)
                self.ledger.settle(reservation, answer.cost_usd)
            finally:
                self.ledger.release(reservation)
            usage.add(answer.usage)
            result.extra_cost_usd += answer.cost_usd
            result.failed_attempts += answer.log.failed
            result.model = answer.response.get("model") or result.model
            result.steps += 1
        # Stopped with tool calls pending: hand on what the tools said, so the work is not lost.
        said = "\n".join(f"- {o.tool} ({o.status}): {o.text[:300]}" for o in result.tool_calls)
        result.text = (result.text + "\n\n" if result.text else "") + (
            f"(stopped: {result.stopped})" + (f"\nTool results so far:\n{said}" if said else ""))
        return result

    def _label(self, name: str) -> str:
        """The metric label: a listed tool's name; anything a model made up is ``unknown``."""
        return name if name in self.tools.specs else "unknown"

    async def _run_calls(self, calls: list[dict[str, Any]]) -> list[tuple[ToolOutcome, float]]:
        """Each call's outcome and what it cost (calls of one step run concurrently)."""
        allowed = self.limits.max_calls_per_step
        return list(await asyncio.gather(*(
            self._one(c) if i < allowed else self._refused(c, f"more than max_calls_per_step={allowed} tool calls")
            for i, c in enumerate(calls))))

    async def _refused(self, call: dict[str, Any], why: str) -> tuple[ToolOutcome, float]:
        name = str((call.get("function") or {}).get("name") or "?")
        self.metrics.swarm_tool_calls.labels(self._label(name), "refused").inc()
        return ToolOutcome(name, "", "refused", f"tool call not made: {why}", 0.0), 0.0

    async def _one(self, call: dict[str, Any]) -> tuple[ToolOutcome, float]:
        function = call.get("function") or {}
        name = str(function.get("name") or "?")
        timeout = min(self.limits.tool_timeout_s, self.deadline - time.perf_counter())
        if timeout <= 0:
            return await self._refused(call, "the swarm's latency budget is used up")
        cost = self.tools.cost_of(name)
        reservation = self.ledger.reserve(cost)
        if reservation is None:
            return await self._refused(call, "the cost ceiling cannot pay for it")
        spec = self.tools.specs.get(name)
        attrs = {"router.swarm.tool": name, "router.swarm.tool.server": spec.server if spec else ""}
        with self.tracer.span("router.swarm.tool", attrs) as span:
            try:
                outcome = await self.tools.call(name, str(function.get("arguments") or "{}"), timeout)
            except BaseException:
                self.ledger.release(reservation)
                raise
            # A call the server answered is paid for, whatever it answered.
            cost = cost if outcome.status in ("ok", "error") and spec is not None else 0.0
            self.ledger.settle(reservation, cost)
            span.set_attributes({"router.swarm.tool.status": outcome.status,
                                 "router.swarm.tool.ms": round(outcome.ms, 1)})
            if outcome.status != "ok":
                span.failed(f"tool_{outcome.status}")
        self.metrics.swarm_tool_calls.labels(self._label(name), outcome.status).inc()
        return outcome, cost
