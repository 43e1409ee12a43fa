"""``Swarm``: the gateway as orchestrator — plan, fan out, aggregate — within the request's budget.

    plan (one call, one repair) ─► route each subtask (classify + decide) ─► fan-out decision
        ─► sub-agents (task group, limiters, ledger; an agent loop with MCP tools when configured)
        ─► aggregate (one call, may answer with the client's tools) ─► OpenAI answer + ``router.swarm``

Every upstream call goes through ``Dispatcher.complete`` with a one-route chain, so retries,
circuits, in-flight metrics and output capping by money stay in one place; the money each call
gets is exactly its reservation in the ledger, which is how the ceiling holds on actual cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from router import errors
from router.dispatch.executor import AttemptLog, Dispatcher
from router.dispatch.upstream import Usage
from router.engine.decide import ANSWER_LENGTH_FACTOR, Candidate, Label, estimate_route
from router.engine.live import LiveState
from router.engine.request_facts import RequestFacts, extract_facts
from router.exchange import Routed
from router.observability.metrics import RouterMetrics
from router.observability.tracing import Tracer
from router.swarm import aggregate
from router.swarm.agent_loop import AgentLoop
from router.swarm.executor import AgentExecutor, AgentOutcome, CallResult
from router.swarm.fanout import AgentSpec, Estimates, FanOut, plan_fanout
from router.swarm.ledger import BudgetLedger
from router.swarm.measures import Timeline, measures
from router.swarm.plan import Plan, PlanFailed, make_plan
from router.swarm.prompts import aggregator_messages, request_text, worker_messages
from router.swarm.report import run_report, tool_footer
from router.swarm.result import SwarmResult
from router.swarm.routing import SubtaskClassifier, SubtaskRoute, route_subtasks, shares
from router.swarm.stream import SwarmStream
from router.swarm.tools import RunTools

_PLAN_TOKENS_PER_SUBTASK = 60  # a subtask's JSON: id, instruction, depends_on
_PLANNER_SHARE = 0.25  # the planner may spend max(2x its estimate, this share of the ceiling)
_SIMPLE = Label("simple")  # planning, one subtask and merging are priced as simple tasks
_ANSWER_FIELDS = frozenset({"max_tokens", "max_completion_tokens", "response_format", "temperature", "top_p",
                            "stop", "seed", "user",
                            # The client's tools are the aggregator's to call (a normal tool_calls answer);
                            # sub-agents never see them.
                            "tools", "tool_choice", "parallel_tool_calls"})
_PRICE_SAMPLES = 8  # subtasks priced to estimate a typical agent (the ledger prices each one exactly)


@dataclass(frozen=True, slots=True)
class _Prepared:
    body: dict[str, Any]
    facts: RequestFacts
    candidate: Candidate
    price: float


class Swarm:
    """One per process (holds the per-backend pools)."""

    def __init__(self, *, dispatcher: Dispatcher, live: LiveState, metrics: RouterMetrics, tracer: Tracer,
                 classifier: SubtaskClassifier | None = None) -> None:
        self.dispatcher = dispatcher
        self.classifier = classifier  # routes each subtask; without it every subtask goes to swarm.worker
        self.live = live
        self.metrics = metrics
        self.tracer = tracer
        self._pools: dict[str, tuple[int, asyncio.Semaphore]] = {}

    def pool(self, backend: str, size: int) -> asyncio.Semaphore:
        """The process-wide limiter of a backend's sub-agents (resized when the policy changes)."""
        current = self._pools.get(backend)
        if current is None or current[0] != size:
            current = (size, asyncio.Semaphore(size))
            self._pools[backend] = current
        return current[1]

    async def complete(self, routed: Routed) -> SwarmResult:
        with routed.trace.activate():
            return await _Run(self, routed).execute()

    def stream(self, routed: Routed) -> SwarmStream:
        model = routed.loaded.policy.backends[routed.loaded.policy.swarm.aggregator.partition(":")[0]].model

        def run(progress: Callable[[str], None]) -> Coroutine[Any, Any, SwarmResult]:
            return _Run(self, routed, progress).execute()

        return SwarmStream(run, request_id=routed.request_id, model=model, trace=routed.trace)


def _tool_calls(response: dict[str, Any]) -> list[dict[str, Any]]:
    choices = response.get("choices") or [{}]
    return list((choices[0].get("message") or {}).get("tool_calls") or [])


def _content(response: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """(content, reasoning, finish_reason) of an OpenAI answer."""
    choices = response.get("choices") or [{}]
    message = choices[0].get("message") or {}
    return (str(message.get("content") or ""), message.get("reasoning_content"),
            choices[0].get("finish_reason"))


class _Run:
    """One swarm request, start to finish."""

    def __init__(self, swarm: Swarm, routed: Routed, progress: Callable[[str], None] | None = None) -> None:
        self.swarm = swarm
        self.routed = routed
        self.policy = routed.loaded.policy
        self.cfg = self.policy.swarm
        self.ledger = BudgetLedger(routed.decision.limits.max_cost_usd)
        self.usage = Usage()
        self.failed_attempts = 0
        self.errors: list[str] = []
        self.request = request_text(routed.body.get("messages") or [])
        self.progress = progress
        self.timeline = Timeline()
        self._prepared: dict[int, _Prepared] = {}
        worker_backend = self.cfg.worker.partition(":")[0]
        self.worker_backend = worker_backend
        self.capacity = min(self.cfg.concurrency, self.policy.backends[worker_backend].max_concurrency)
        self.routes: dict[str, SubtaskRoute] = {}
        self.tools: RunTools | None = None
        self.agents_deadline = routed.arrived + routed.decision.limits.latency_budget_ms / 1000
        self.answer_tool_calls: list[dict[str, Any]] = []
        self.routing_ms = 0.0
        self.answer_model = self.policy.backends[self.cfg.aggregator.partition(":")[0]].model

    # --- pricing -------------------------------------------------------------------------------
    def _prepare(self, route: str, messages: list[dict[str, Any]], output_tokens: int,
                 extra: dict[str, Any] | None = None, label: Label = _SIMPLE) -> _Prepared:
        """The call's body, facts, one-route chain and the money it may spend (its reservation)."""
        body = {**(extra or {}), "messages": messages}
        facts = extract_facts(body)
        cand = estimate_route(self.policy, route, facts, label, self.swarm.live, output_tokens=output_tokens)
        price_in, _, price_out = self.policy.backends[cand.backend].pricing.per_token_usd()
        # Upper bound of the input (what the dispatcher assumes when it caps output) + the output allowed.
        price = facts.input_tokens_upper * price_in + (cand.output_tokens + cand.reasoning_tokens) * price_out
        return _Prepared(body, facts, cand, price)

    def _answer_tokens(self) -> int:
        est = self.policy.estimates.get(self.routed.label.task_type)
        base = est.output_tokens if est is not None else 500
        return max(16, round(base * ANSWER_LENGTH_FACTOR.get(self.routed.label.answer_length, 1.0)))

    def _route_of(self, subtask_id: str) -> tuple[str, Label]:
        chosen = self.routes.get(subtask_id)
        return (chosen.route, chosen.label) if chosen else (self.cfg.worker, _SIMPLE)

    def _worker_extra(self) -> dict[str, Any] | None:
        """With MCP tools, a worker call carries them (priced and capped as such)."""
        return {"tools": self.tools.openai_tools()} if self.tools and self.tools.available else None

    def _worker_messages(self, instructions: list[tuple[str, str]], given: list[tuple[str, str]]
                         ) -> list[dict[str, Any]]:
        unavailable = [f"{name} ({why})" for name, why in self.tools.failed.items()] if self.tools else []
        return worker_messages(instructions, self.request, given,
                               tools=bool(self.tools and self.tools.available), unavailable=unavailable)

    def _worker(self, spec: AgentSpec, inputs: list[AgentOutcome]) -> _Prepared:
        prepared = self._prepared.get(spec.index)
        if prepared is None:
            given = [(o.spec.ids, o.text) for o in inputs]
            messages = self._worker_messages([(s.id, s.instruction) for s in spec.subtasks], given)
            route, label = self._route_of(spec.subtasks[0].id)
            prepared = self._prepare(route, messages, self.cfg.worker_output_tokens * len(spec.subtasks),
                                     self._worker_extra(), label)
            self._prepared[spec.index] = prepared
        return prepared

    def _sample(self, subtask_id: str, instruction: str) -> _Prepared:
        route, label = self._route_of(subtask_id)
        return self._prepare(route, self._worker_messages([(subtask_id, instruction)], []),
                             self.cfg.worker_output_tokens, self._worker_extra(), label)

    def _estimates(self, plan: Plan | None) -> Estimates:
        """Fan-out estimates from the actual plan (or, before it exists, from the request)."""
        subtasks = plan.subtasks if plan else []
        samples = [self._sample(s.id, s.instruction) for s in subtasks[:_PRICE_SAMPLES]] or [
            self._sample("t1", self.request)]
        worker_price = sum(p.price for p in samples) / len(samples)
        agg = self._prepare(self.cfg.aggregator, aggregator_messages(self.request, []),
                            self._answer_tokens())
        agg_in = self.policy.backends[agg.candidate.backend].pricing.per_token_usd()[0]
        wk_in = self.policy.backends[samples[0].candidate.backend].pricing.per_token_usd()[0]
        # A result is read twice: by the aggregator and (for dependents) by another worker; count
        # its tokens at the upper bound the dispatcher uses (one token per 3 bytes, ~4/3 per token).
        read = self.cfg.worker_output_tokens * 2
        deps = (sum(len(s.depends_on) for s in subtasks) / len(subtasks)) if subtasks else 0.0
        return Estimates(per_subtask_usd=worker_price + read * agg_in + deps * read * wk_in,
                         aggregator_usd=agg.price, worker_ms=max(p.candidate.latency_ms for p in samples),
                         aggregator_ms=agg.candidate.latency_ms)

    # --- calls -----------------------------------------------------------------------------------
    async def _call(self, prepared: _Prepared, money: float) -> CallResult:
        answer = await self.swarm.dispatcher.complete(self.routed.loaded, [prepared.candidate], prepared.body,
                                                      prepared.facts, money)
        self.usage.add(answer.usage)
        self.failed_attempts += answer.log.failed
        self.errors.extend(answer.log.errors)
        text, _, _ = _content(answer.response)
        return CallResult(text, answer.usage, answer.cost_usd, answer.response.get("model"), answer.log.failed)

    async def _paid(self, prepared: _Prepared, allowance: float, role: str) -> tuple[CallResult, dict[str, Any]]:
        """One ledger-booked call for the planner or aggregator; returns the raw response too."""
        reservation = self.ledger.reserve(allowance)
        if reservation is None:
            raise errors.RouteInfeasible(
                f"The swarm {role} cannot be paid for: ${self.ledger.remaining:.6f} of the "
                f"${self.ledger.ceiling:g} ceiling is left.")
        try:
            answer = await self.swarm.dispatcher.complete(self.routed.loaded, [prepared.candidate], prepared.body,
                                                          prepared.facts, reservation.amount)
            self.ledger.settle(reservation, answer.cost_usd)
        finally:
            self.ledger.release(reservation)
        self.usage.add(answer.usage)
        self.failed_attempts += answer.log.failed
        self.errors.extend(answer.log.errors)
        text, _, _ = _content(answer.response)
        return CallResult(text, answer.usage, answer.cost_usd, answer.response.get("model")), answer.response

    def _say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line + "\n")

    # --- the stages -------------------------------------------------------------------------------
    async def _plan(self) -> Plan:
        subtasks_hint = max(1, self.routed.label.subtasks)
        before = self._estimates(None)
        floor = before.aggregator_usd + before.per_subtask_usd  # planning must leave one agent + merge

        async def ask(messages: list[dict[str, Any]]) -> str:
            prepared = self._prepare(self.cfg.planner, messages, _PLAN_TOKENS_PER_SUBTASK * subtasks_hint)
            allowance = min(self.ledger.remaining - floor,
                            max(2 * prepared.price, _PLANNER_SHARE * self.ledger.ceiling))
            if allowance <= 0:
                raise errors.RouteInfeasible(
                    f"The ${self.ledger.ceiling:g} ceiling cannot pay for a swarm: planning, one sub-agent and "
                    f"the aggregation need about ${prepared.price + floor:.6f}.")
            result, _ = await self._paid(prepared, allowance, "planner")
            return result.text

        with self.swarm.tracer.span("router.swarm.plan", {"router.route": self.cfg.planner}) as span:
            try:
                plan = await make_plan(ask, list(self.routed.body.get("messages") or []),
                                       max_agents=self.cfg.max_agents)
            except PlanFailed as exc:
                span.failed("invalid_plan")
                raise errors.UpstreamFailed(str(exc)) from None
            span.set_attributes({"router.swarm.subtasks": len(plan.subtasks), "router.swarm.repaired": plan.repaired,
                                 "router.swarm.cycle": bool(plan.cycle)})
        return plan

    def _fanout(self, plan: Plan, est: Estimates) -> FanOut:
        elapsed_ms = (time.perf_counter() - self.routed.arrived) * 1000
        time_left = self.routed.decision.limits.latency_budget_ms - elapsed_ms
        # What the pool can take now: requests already in flight to it (other swarms, other traffic)
        # use slots this run's agents will queue behind.
        backends = {r.partition(":")[0] for r in self._routes_used(plan)}
        free = sum(self.policy.backends[b].max_concurrency - self.swarm.live.inflight(b) for b in backends)
        return plan_fanout(plan, est, money_left=self.ledger.remaining, time_left_ms=time_left,
                           capacity=max(1, min(self.capacity, free)), max_agents=self.cfg.max_agents,
                           route_of={sid: r.route for sid, r in self.routes.items()})

    def _routes_used(self, plan: Plan) -> list[str]:
        return list(dict.fromkeys(self._route_of(s.id)[0] for s in plan.subtasks))

    def _route_plan(self, plan: Plan) -> None:
        """Classify and route every subtask within its share of the money and time left."""
        if self.swarm.classifier is None or not self.cfg.route_subtasks:
            return
        before = self._estimates(None)
        elapsed_ms = (time.perf_counter() - self.routed.arrived) * 1000
        time_left = self.routed.decision.limits.latency_budget_ms - elapsed_ms - before.aggregator_ms
        share = shares(self.ledger.remaining - before.aggregator_usd, time_left, len(plan.subtasks),
                       self.capacity, plan.depth)
        extra = self._worker_extra()

        def facts_of(subtask: Any) -> RequestFacts:
            return extract_facts({**(extra or {}), "messages": self._worker_messages(
                [(subtask.id, subtask.instruction)], [])})

        with self.swarm.tracer.span("router.swarm.route", {"router.swarm.subtasks": len(plan.subtasks)}) as span:
            self.routes = route_subtasks(self.policy, plan.subtasks, self.swarm.classifier, self.swarm.live,
                                         share, facts_of)
            span.set_attributes({"router.swarm.routes": sorted({r.route for r in self.routes.values()})})

    async def _agents(self, fan: FanOut) -> list[AgentOutcome]:
        total = len(fan.agents)
        tracer = self.swarm.tracer

        async def call(spec: AgentSpec, inputs: Any, money: float) -> CallResult:
            prepared = self._worker(spec, list(inputs))
            attrs = {"router.swarm.agent": spec.index, "router.swarm.subtasks": spec.ids,
                     "router.route": prepared.candidate.route}
            with tracer.span("router.swarm.agent", attrs) as span:
                try:
                    result = await (self._loop(prepared, money) if self._worker_extra() else
                                    self._call(prepared, money))
                except errors.RouterError as exc:
                    span.failed(exc.type)
                    raise
                span.set_attributes({"router.swarm.steps": result.steps,
                                     "router.swarm.tool_calls": len(result.tool_calls)})
                span.succeeded(result.model, result.usage, result.cost_usd + result.extra_cost_usd)
                return result

        def price(spec: AgentSpec, inputs: Any) -> float:
            return self._worker(spec, list(inputs)).price

        def done(outcome: AgentOutcome) -> None:
            n = f"agent {outcome.spec.index + 1}/{total}"
            route, label = self._route_of(outcome.spec.subtasks[0].id)
            if outcome.attempts:  # agents that called their route (not those skipped before a call)
                self.swarm.metrics.swarm_agent_routes.labels(route, label.task_type).inc()
            if outcome.status == "ok":
                preview = " ".join(outcome.text.split())[:80]
                tools = f", {len(outcome.tool_calls)} tool call(s)" if outcome.tool_calls else ""
                self._say(f"{n} done ({outcome.spec.ids} on {route}{tools}, {outcome.duration_ms:.0f} ms): "
                          f"{preview}")
            else:
                self._say(f"{n} {outcome.status} ({outcome.spec.ids}): {outcome.error}")

        run_limiter = asyncio.Semaphore(self.capacity)

        def limiters(spec: AgentSpec) -> list[asyncio.Semaphore]:
            backend = (spec.route or self.cfg.worker).partition(":")[0]
            return [run_limiter, self.swarm.pool(backend, self.policy.backends[backend].max_concurrency)]

        executor = AgentExecutor(call=call, price=price, ledger=self.ledger, limiters=limiters,
                                 timeout_s=self.cfg.agent_timeout_s, retries=1, on_done=done)
        return await executor.run(fan.agents)

    async def _loop(self, prepared: _Prepared, money: float) -> CallResult:
        """A sub-agent with MCP tools: the bounded agent loop on its route, every step via the dispatcher."""
        assert self.tools is not None
        dispatcher = self.swarm.dispatcher
        cand = prepared.candidate

        async def step(body: dict[str, Any], step_money: float) -> Any:
            answer = await dispatcher.complete(self.routed.loaded, [cand], body, extract_facts(body), step_money)
            self.usage.add(answer.usage)
            self.failed_attempts += answer.log.failed
            self.errors.extend(answer.log.errors)
            return answer

        def price(body: dict[str, Any]) -> float:
            facts = extract_facts(body)
            price_in, _, price_out = self.policy.backends[cand.backend].pricing.per_token_usd()
            return facts.input_tokens_upper * price_in + (cand.output_tokens + cand.reasoning_tokens) * price_out

        loop = AgentLoop(tools=self.tools, limits=self.cfg.tools, ledger=self.ledger, tracer=self.swarm.tracer,
                         metrics=self.swarm.metrics, deadline=self.agents_deadline)
        out = await loop.run(prepared.body, money, step, price)
        return CallResult(out.text, out.usage, out.first_cost_usd, out.model, out.failed_attempts,
                          extra_cost_usd=out.extra_cost_usd, steps=out.steps, tool_calls=out.tool_calls,
                          stopped=out.stopped)

    async def _aggregate(self, plan: Plan, outcomes: list[AgentOutcome],
                         missing: list[aggregate.Missing]) -> tuple[str, str | None, str, str, str]:
        """(content, reasoning, finish_reason, model, aggregated_by)."""
        parts = aggregate.sections(plan.subtasks, outcomes, missing)
        # The final answer is the aggregator's: the client's output settings apply to it.
        shaping = {k: v for k, v in self.routed.body.items() if k in _ANSWER_FIELDS}
        prepared = self._prepare(self.cfg.aggregator, aggregator_messages(self.request, parts),
                                 self._answer_tokens(), shaping)
        with self.swarm.tracer.span("router.swarm.aggregate", {"router.route": self.cfg.aggregator}) as span:
            try:
                result, response = await self._paid(prepared, self.ledger.remaining, "aggregator")
            except errors.RouterError as exc:
                span.failed(exc.type)
                self._say(f"aggregator failed ({exc.message}); joining the results in plan order")
                return aggregate.fallback_answer(parts), None, "stop", "swarm", "gateway"
            span.succeeded(result.model, result.usage, result.cost_usd)
        text, reasoning, finish = _content(response)
        self.answer_tool_calls = _tool_calls(response)  # the client's tools, called by the aggregator
        return text, reasoning, finish or "stop", str(result.model or self.answer_model), "aggregator"

    async def execute(self) -> SwarmResult:
        metrics = self.swarm.metrics
        timeline = self.timeline
        servers = {n: s for n, s in self.cfg.tools.servers.items() if s.enabled}
        # Connect to the MCP servers while the planner thinks: no latency added when they answer in time.
        tools_task = asyncio.create_task(RunTools.open(servers, self.cfg.tools.tool_timeout_s)) if servers else None
        try:
            timeline.start = time.perf_counter()
            self._say("planning")
            plan = await self._plan()
            if tools_task is not None:
                self.tools = await tools_task
                for name, why in self.tools.failed.items():
                    self._say(f"tool server {name} unavailable: {why}")
            routing_started = time.perf_counter()
            self._route_plan(plan)
            timeline.planned = time.perf_counter()
            self.routing_ms = (timeline.planned - routing_started) * 1000
            est = self._estimates(plan)
            self.agents_deadline = self.routed.arrived + (
                self.routed.decision.limits.latency_budget_ms - est.aggregator_ms) / 1000
            fan = self._fanout(plan, est)
            self._say(f"plan: {len(plan.subtasks)} subtask(s) -> {len(fan.agents)} agent(s), up to "
                      f"{fan.capacity} at once ({fan.binding} decided)")
            for note in plan.notes:
                self._say(f"plan note: {note}")
            by_id = {s.id: s for s in plan.subtasks}
            missing = [aggregate.Missing(by_id[sid], "skipped", why) for sid, why in fan.skipped]
            if not fan.agents:
                raise errors.RouteInfeasible(
                    f"The ${self.ledger.ceiling:g} ceiling pays for the plan but not for one sub-agent and the "
                    f"aggregation ({fan.reasons[2]}).")
            # Hold the aggregation's money while the agents spend theirs.
            hold = self.ledger.reserve(est.aggregator_usd + self._aggregation_reading(fan))
            try:
                outcomes = await self._agents(fan)
            finally:
                if hold is not None:
                    self.ledger.release(hold)
            timeline.fanned_out = time.perf_counter()
            for outcome in outcomes:
                if outcome.status != "ok":
                    missing += [aggregate.Missing(s, outcome.status, outcome.error or "failed")
                                for s in outcome.spec.subtasks]
            order = {s.id: i for i, s in enumerate(plan.subtasks)}
            missing.sort(key=lambda m: order[m.subtask.id])
            if not any(o.status == "ok" for o in outcomes):
                raise errors.UpstreamFailed("Every sub-agent failed: " + "; ".join(
                    f"{m.subtask.id} ({m.reason})" for m in missing[:10]))
            self._say(f"aggregating {sum(o.status == 'ok' for o in outcomes)} result(s)")
            content, reasoning, finish, model, by = await self._aggregate(plan, outcomes, missing)
            timeline.ended = time.perf_counter()
        finally:
            metrics.swarm_cost.inc(self.ledger.spent)
            await self._close_tools(tools_task)
        report = run_report(plan, outcomes, self.routes, self.tools, fan.skipped, self.cfg.worker)
        tail = "\n\n".join(t for t in (aggregate.footer(missing, len(plan.subtasks)), tool_footer(report)) if t)
        # A footer would break a JSON answer; a tool_calls answer keeps the failures in router.swarm only.
        if tail and not self.routed.body.get("response_format") and not self.answer_tool_calls:
            content = content.rstrip() + "\n\n" + tail + "\n"
        swarm = measures(plan, fan, outcomes, timeline, capacity=fan.capacity)
        swarm.update({"cost_usd": round(self.ledger.spent, 8), "max_cost_usd": self.ledger.ceiling,
                      "aggregated_by": by, "failed": [m.as_dict() for m in missing],
                      "routing_ms": round(self.routing_ms, 2), **report})
        metrics.swarm_agents.observe(swarm["agents_run"])
        metrics.swarm_duration.observe(swarm["wall_ms"] / 1000)
        metrics.swarm_efficiency.observe(swarm["parallel_efficiency"])
        metrics.swarm_failed_agents.inc(swarm["agents_failed"])
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if reasoning:
            message["reasoning_content"] = reasoning
        if self.answer_tool_calls:
            message["tool_calls"] = self.answer_tool_calls
            finish = "tool_calls"
        response = {"id": f"chatcmpl-{self.routed.request_id}", "object": "chat.completion",
                    "created": int(time.time()), "model": model,
                    "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                    "usage": self.usage.as_openai()}
        log = AttemptLog(failed=self.failed_attempts, errors=self.errors[:20], upstream_s=timeline.busy_s)
        return SwarmResult(response=response, usage=self.usage, cost_usd=self.ledger.spent, swarm=swarm, log=log)

    async def _close_tools(self, opening: asyncio.Task[RunTools] | None) -> None:
        if opening is None:
            return
        if not opening.done():
            opening.cancel()
        with contextlib.suppress(BaseException):
            tools = await opening
            await tools.aclose()

    def _aggregation_reading(self, fan: FanOut) -> float:
        agg_in = self.policy.backends[self.cfg.aggregator.partition(":")[0]].pricing.per_token_usd()[0]
        return sum(len(a.subtasks) for a in fan.agents) * self.cfg.worker_output_tokens * 2 * agg_in

