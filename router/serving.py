"""Chat serving, callable without HTTP: classify → decide → dispatch or swarm → respond.

``ChatServing.prepare`` turns a parsed body and headers into a ``Routed`` request (label and
decision); ``complete`` and ``stream`` carry it out and return the OpenAI-shaped answer plus the
``x-router-*`` headers. Metrics and the access log are recorded here, at the request's edge.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any, Protocol

from router import errors, sse, taxonomy
from router.dispatch.executor import Dispatcher
from router.dispatch.upstream import UpstreamError, Usage
from router.engine.decide import Candidate, Label, Limits, decide
from router.engine.live import LiveState
from router.engine.request_facts import RequestFacts, extract_facts
from router.exchange import Routed
from router.observability.access_log import AccessLog
from router.observability.metrics import RouterMetrics
from router.observability.tracing import NO_TRACE, RequestTrace, Tracer
from router.policy.loader import LoadedPolicy
from router.protocol import RouterControls, parse_controls, validate_chat_request
from router.swarm.result import SwarmResult


class Classifier(Protocol):
    def classify(self, messages: list[dict[str, Any]], *, tools: list[Any] | None = None,
                 confidence_floor: float = 0.0, fallback: str = "reasoning") -> Any: ...


class PolicySource(Protocol):
    @property
    def current(self) -> LoadedPolicy: ...


class SwarmRunner(Protocol):
    async def complete(self, routed: Routed) -> SwarmResult: ...

    def stream(self, routed: Routed) -> SwarmStream: ...


class SwarmStream(Protocol):
    """Chunks (progress as ``reasoning_content`` deltas, then the answer); ``result`` when done."""

    chunks: AsyncGenerator[dict[str, Any], None]
    result: SwarmResult | None


class ChatServing:
    def __init__(self, *, policies: PolicySource, classifier: Classifier, live: LiveState,
                 dispatcher: Dispatcher, metrics: RouterMetrics, tracer: Tracer, access_log: AccessLog,
                 swarm: SwarmRunner | None = None) -> None:
        self.policies = policies
        self.classifier = classifier
        self.live = live
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.tracer = tracer
        self.access_log = access_log
        self.swarm = swarm

    # --- classify and decide ------------------------------------------------------------------
    def _resolve_model(self, loaded: LoadedPolicy, model: str,
                       controls: RouterControls) -> tuple[str | None, str | None]:
        """(forced mode, direct route) for the body's ``model``."""
        if model == "auto":
            return controls.mode, None
        if model.startswith("auto:"):
            mode = model[5:]
            if mode not in taxonomy.MODES:
                raise errors.ModelNotFound(
                    f"The model '{model}' does not exist; use auto or auto:<{'|'.join(taxonomy.MODES)}>.",
                    param="model")
            if controls.mode is not None and controls.mode != mode:
                raise errors.InvalidRequest(f"model '{model}' and the requested mode '{controls.mode}' disagree.",
                                            param="model")
            return mode, None
        route = loaded.policy.resolve_model(model)
        if route is None:
            known = ", ".join(["auto", *(f"auto:{m}" for m in taxonomy.MODES), *loaded.policy.routes])
            raise errors.ModelNotFound(f"The model '{model}' does not exist or its backend is disabled. "
                                       f"Available: {known}.", param="model")
        return None, route

    def _label(self, loaded: LoadedPolicy, body: dict[str, Any], facts: RequestFacts,
               controls: RouterControls) -> tuple[Label, dict[str, float], str | None]:
        if controls.task_type is not None:
            subtasks = loaded.policy.swarm.min_subtasks if controls.task_type == "decomposable" else 1
            return Label(controls.task_type, 1.0, "medium", subtasks), {}, "X-Router-Task-Type"
        cfg = loaded.policy.classifier
        with self.tracer.span("router.classify") as span:
            result = self.classifier.classify(body["messages"], tools=body.get("tools") or body.get("functions"),
                                              confidence_floor=cfg.confidence_floor,
                                              fallback=cfg.fallback_task_type)
            span.set_attributes({"router.task_type": result.task_type,
                                 "router.confidence": float(result.confidence)})
        self.metrics.classifier_confidence.labels(result.task_type).observe(result.confidence)
        label = Label(result.task_type, float(result.confidence), result.answer_length, int(result.subtasks))
        return label, dict(result.probabilities), result.rule

    def prepare(self, body: dict[str, Any], headers: Mapping[str, str], *, arrived: float | None = None,
                dry_run: bool = False, trace: RequestTrace = NO_TRACE) -> Routed:
        arrived = time.perf_counter() if arrived is None else arrived
        request = validate_chat_request(body)
        controls = parse_controls(headers, request.router)
        loaded = self.policies.current  # this request keeps this policy, whatever reloads happen
        forced_mode, direct_route = self._resolve_model(loaded, request.model, controls)
        facts = extract_facts(body)
        label, probabilities, rule = self._label(loaded, body, facts, controls)
        defaults = loaded.policy.defaults
        limits = Limits(
            max_cost_usd=min(defaults.max_cost_usd, controls.max_cost_usd or defaults.max_cost_usd),
            latency_budget_ms=min(defaults.latency_budget_ms,
                                  controls.latency_budget_ms or defaults.latency_budget_ms))
        with self.tracer.span("router.decide") as span:
            decision = decide(loaded.policy, facts, label, limits, self.live,
                              forced_mode=forced_mode, direct_route=direct_route)
            if decision.chosen is not None:
                span.set_attributes({"router.route": decision.chosen.route,
                                     "router.estimated_cost_usd": decision.chosen.cost_usd})
        decision_ms = (time.perf_counter() - arrived) * 1000
        if not dry_run:
            self.metrics.decision_duration.observe(decision_ms / 1000)
            for cand in decision.candidates:
                for reason in cand.reasons:
                    self.metrics.rejections.labels(cand.route, reason).inc()
        routed = Routed(request_id=f"rtr-{os.urandom(16).hex()}", arrived=arrived, body=body, facts=facts,
                        controls=controls, loaded=loaded, label=label, decision=decision,
                        decision_ms=decision_ms, probabilities=probabilities, rule=rule,
                        include_usage=bool(request.stream_options and request.stream_options.include_usage),
                        trace=trace)
        if decision.chosen is None and not dry_run:
            self._raise_infeasible(routed)
        return routed

    def _raise_infeasible(self, routed: Routed) -> None:
        decision = routed.decision
        self.metrics.requests.labels("none", routed.label.task_type, "none", "infeasible").inc()
        self.access_log.write(routed, route="none", mode="none", status="infeasible", usage=Usage(), cost=0.0,
                              fallbacks=0, duration_s=time.perf_counter() - routed.arrived, ttft_s=None)
        routed.trace.end({"router.request_id": routed.request_id, "router.task_type": routed.label.task_type,
                          "router.confidence": routed.label.confidence, "router.status": "infeasible"},
                         error="route_infeasible")
        message = (f"No route can serve this {routed.label.task_type} request within "
                   f"${decision.limits.max_cost_usd:g} and {decision.limits.latency_budget_ms:g} ms: "
                   f"{decision.explain_rejections()}.")
        request_id = {"x-router-request-id": routed.request_id}
        if decision.unavailable:  # some route would fit once its circuit closes / queue drains
            raise errors.Unavailable(message, headers={"retry-after": "1", **request_id})
        raise errors.RouteInfeasible(message, headers=request_id)

    # --- answers --------------------------------------------------------------------------------
    def _money_left(self, routed: Routed) -> float:
        return routed.decision.spend_limit_usd

    def _deadline(self, routed: Routed) -> float | None:
        """When the latency budget runs out (``perf_counter``); best effort has none."""
        if routed.decision.best_effort:
            return None
        return routed.arrived + routed.decision.limits.latency_budget_ms / 1000

    def _finish(self, routed: Routed, *, route: str, mode: str, status: str, usage: Usage, cost: float,
                upstream_s: float, fallbacks: int, ttft_s: float | None = None) -> None:
        total = time.perf_counter() - routed.arrived
        m = self.metrics
        m.requests.labels(route, routed.label.task_type, mode, status).inc()
        m.request_duration.labels(route).observe(total)
        m.overhead.observe(max(0.0, total - upstream_s))
        if ttft_s is not None:
            m.ttft.labels(route).observe(ttft_s)
        if status == "ok":
            m.tokens.labels(route, "input").inc(usage.input_tokens)
            m.tokens.labels(route, "output").inc(usage.output_tokens)
            if usage.reasoning_tokens:
                m.tokens.labels(route, "reasoning").inc(usage.reasoning_tokens)
            m.cost.labels(route).inc(cost)
            m.estimated_cost.labels(route).inc(routed.candidate(route).cost_usd)
            met = total * 1000 <= routed.decision.limits.latency_budget_ms
            m.budget_outcomes.labels(route, "met" if met else "missed").inc()
        self.access_log.write(routed, route=route, mode=mode, status=status, usage=usage, cost=cost,
                              fallbacks=fallbacks, duration_s=total, ttft_s=ttft_s)
        routed.trace.end({"router.request_id": routed.request_id,
                          "router.task_type": routed.label.task_type, "router.confidence": routed.label.confidence,
                          "router.route": route, "router.mode": mode, "router.status": status,
                          "router.estimated_cost_usd": routed.candidate(route).cost_usd,
                          "router.cost_usd": round(cost, 8),
                          "router.fallbacks": fallbacks, "gen_ai.usage.input_tokens": usage.input_tokens,
                          "gen_ai.usage.output_tokens": usage.output_tokens},
                         error=None if status == "ok" else status)

    def fail(self, routed: Routed, exc: errors.RouterError) -> None:
        status = {429: "rate_limited", 504: "timeout", 400: "client_error"}.get(exc.status, "upstream_error")
        exc.headers.setdefault("x-router-request-id", routed.request_id)
        self._finish(routed, route=routed.chosen.route, mode=routed.chosen.mode, status=status, usage=Usage(),
                     cost=0.0, upstream_s=exc.upstream_s, fallbacks=exc.failed_attempts)

    async def complete(self, routed: Routed) -> tuple[dict[str, Any], dict[str, str]]:
        try:
            if routed.chosen.route == taxonomy.SWARM_ROUTE:
                return await self._complete_swarm(routed)
            return await self._complete_single(routed)
        except asyncio.CancelledError:  # the client went away: still one metric and one log line
            self._finish(routed, route=routed.chosen.route, mode=routed.chosen.mode, status="cancelled",
                         usage=Usage(), cost=0.0, upstream_s=0.0, fallbacks=0)
            raise

    async def _complete_single(self, routed: Routed) -> tuple[dict[str, Any], dict[str, str]]:
        chain = routed.decision.chain
        try:
            answer = await self.dispatcher.complete(routed.loaded, chain, routed.body, routed.facts,
                                                    self._money_left(routed), deadline=self._deadline(routed))
        except errors.RouterError as exc:
            self.fail(routed, exc)
            raise
        cand = answer.candidate
        router_obj = routed.router_object(route=cand.route, mode=cand.mode, fallbacks=answer.log.failed,
                                          cost_usd=answer.cost_usd)
        response = answer.response
        response["router"] = router_obj
        self._finish(routed, route=cand.route, mode=cand.mode, status="ok", usage=answer.usage,
                     cost=answer.cost_usd, upstream_s=answer.log.upstream_s, fallbacks=answer.log.failed)
        return response, routed.headers(router_obj)

    async def _complete_swarm(self, routed: Routed) -> tuple[dict[str, Any], dict[str, str]]:
        if self.swarm is None:
            raise errors.Unavailable("Swarm mode is not available in this deployment.")
        try:
            result = await self.swarm.complete(routed)
        except errors.RouterError as exc:
            self.fail(routed, exc)
            raise
        router_obj = routed.router_object(route=taxonomy.SWARM_ROUTE, mode="swarm", fallbacks=result.log.failed,
                                          cost_usd=result.cost_usd, swarm=result.swarm)
        result.response["router"] = router_obj
        self._finish(routed, route=taxonomy.SWARM_ROUTE, mode="swarm", status="ok", usage=result.usage,
                     cost=result.cost_usd, upstream_s=result.log.upstream_s, fallbacks=result.log.failed)
        return result.response, routed.headers(router_obj)

    async def stream(self, routed: Routed) -> tuple[AsyncGenerator[bytes, None], dict[str, str]]:
        """Open the upstream stream (with fallbacks) before anything is sent; then relay it."""
        if routed.chosen.route == taxonomy.SWARM_ROUTE:
            return self._stream_swarm(routed)
        try:
            opened = await self.dispatcher.open_stream(routed.loaded, routed.decision.chain, routed.body,
                                                       routed.facts, self._money_left(routed),
                                                       deadline=self._deadline(routed))
        except errors.RouterError as exc:
            self.fail(routed, exc)
            raise
        cand = opened.candidate
        head = routed.router_object(route=cand.route, mode=cand.mode, fallbacks=opened.log.failed, cost_usd=None)
        return self._relay_stream(routed, opened), routed.headers(head)

    async def _relay_stream(self, routed: Routed, opened: Any) -> AsyncGenerator[bytes, None]:
        cand: Candidate = opened.candidate
        usage = Usage()
        template: dict[str, Any] = opened.first_chunk
        status = "ok"
        ttft_s: float | None = None
        ended_at = opened.first_at
        error_kind: str | None = None
        chunk: dict[str, Any] | None = opened.first_chunk
        try:
            while chunk is not None:
                if chunk.get("usage"):
                    usage = Usage.from_openai(chunk["usage"])
                if not routed.include_usage:
                    chunk.pop("usage", None)
                # Usage-only chunks (no choices) are folded into the final router chunk.
                if chunk.get("choices"):
                    if ttft_s is None:
                        ttft_s = time.perf_counter() - routed.arrived
                    yield sse.frame(chunk)
                chunk = await anext(opened.rest, None)
            ended_at = time.perf_counter()
        except UpstreamError as exc:
            status, error_kind = "upstream_error", exc.kind
            self.dispatcher.upstream_failed_mid_stream(opened, exc)
            err = errors.UpstreamFailed(f"The upstream failed mid-stream ({exc.kind}); the answer is incomplete.")
            yield sse.frame(err.body())
        except BaseException:
            status = "cancelled"  # the client went away: closing `rest` closed the upstream call
            raise
        finally:
            await opened.rest.aclose()
            opened.release(None if status == "cancelled" else status == "ok")  # a leaving client is no verdict
            backend = opened.backend
            cost = usage.cost_usd(backend)
            if status == "ok":
                self.dispatcher.observe_stream(opened, usage, ended_at)
            self.tracer.finished_stream(cand, backend, template.get("model"), usage, cost,
                                        opened.started_at, error_kind, parent=routed.trace)
            self._finish(routed, route=cand.route, mode=cand.mode, status=status, usage=usage, cost=cost,
                         upstream_s=opened.log.upstream_s + time.perf_counter() - opened.started_at,
                         fallbacks=opened.log.failed,
                         ttft_s=ttft_s)
        if status == "ok":  # after an error chunk (sent above) only the end of the stream follows
            router_obj = routed.router_object(route=cand.route, mode=cand.mode, fallbacks=opened.log.failed,
                                              cost_usd=cost)
            yield sse.final_frame(chunk_id=template.get("id"), created=template.get("created"),
                                  model=template.get("model"), router=router_obj,
                                  usage=usage if routed.include_usage else None)
        yield sse.DONE

    def _stream_swarm(self, routed: Routed) -> tuple[AsyncGenerator[bytes, None], dict[str, str]]:
        if self.swarm is None:
            raise errors.Unavailable("Swarm mode is not available in this deployment.")
        swarm_stream = self.swarm.stream(routed)
        head = routed.router_object(route=taxonomy.SWARM_ROUTE, mode="swarm", fallbacks=0, cost_usd=None)

        async def frames() -> AsyncGenerator[bytes, None]:
            status = "ok"
            try:
                async for chunk in swarm_stream.chunks:
                    yield sse.frame(chunk)
            except errors.RouterError as exc:
                status = "upstream_error"
                yield sse.frame(exc.body())
            except BaseException:
                status = "cancelled"
                raise
            finally:
                result = swarm_stream.result
                self._finish(routed, route=taxonomy.SWARM_ROUTE, mode="swarm", status=status,
                             usage=result.usage if result else Usage(), cost=result.cost_usd if result else 0.0,
                             upstream_s=result.log.upstream_s if result else 0.0,
                             fallbacks=result.log.failed if result else 0)
            result = swarm_stream.result
            if status == "ok" and result is not None:
                router_obj = routed.router_object(route=taxonomy.SWARM_ROUTE, mode="swarm",
                                                  fallbacks=result.log.failed, cost_usd=result.cost_usd,
                                                  swarm=result.swarm)
                yield sse.final_frame(chunk_id=routed.request_id, created=int(time.time()), model="swarm",
                                      router=router_obj, usage=result.usage if routed.include_usage else None)
            yield sse.DONE

        return frames(), routed.headers(head)

