"""The one request pipeline, callable without HTTP, the same for every front door.

    prepare  validate + controls → classify → decide           (a ``Routed`` request, or an error)
    carry out  dispatch (retries, fallbacks) | swarm            (an ``Answer`` or an ``AnswerStream``)
    account  metrics, one access-log line, the trace's end      (``Accounting``, once per request)

A front door parses its protocol into an OpenAI-chat-shaped body, calls ``serve`` and renders what
comes back; nothing here knows about HTTP or any protocol's wire shape.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Mapping
from typing import Any, Protocol

from router import errors, offload, taxonomy
from router.dispatch.executor import Dispatcher
from router.dispatch.modes import remember_mode
from router.dispatch.upstream import NativeRequest
from router.engine.decide import Label, Limits, decide
from router.engine.live import LiveState
from router.engine.request_facts import RequestFacts, extract_facts
from router.exchange import CHAT_API, Answer, AnswerStream, Routed
from router.observability.access_log import AccessLog
from router.observability.metrics import RouterMetrics
from router.observability.tracing import NO_TRACE, RequestTrace, Tracer
from router.pipeline.accounting import Accounting
from router.pipeline.cascade import Cascade
from router.pipeline.model_names import resolve_model
from router.pipeline.streams import swarm_frames, upstream_frames
from router.policy.loader import LoadedPolicy
from router.protocol import RouterControls, parse_controls, validate_chat_request
from router.swarm import Swarm
from router.tenants.gate import TenantGate, tenant_policy
from router.tenants.limits import KeyLimits


class Classifier(Protocol):
    def classify(self, messages: list[dict[str, Any]], *, tools: list[Any] | None = None,
                 confidence_floor: float = 0.0, fallback: str = "reasoning") -> Any: ...


class LabelMemo:
    """A request's label, computed once: ``prepare`` runs again each time a queued request may have
    room (the admission queue), and its body — so its label — has not changed."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: tuple[Label, dict[str, float], str | None] | None = None


class PolicySource(Protocol):
    @property
    def current(self) -> LoadedPolicy: ...


class Pipeline:
    def __init__(self, *, policies: PolicySource, classifier: Classifier, live: LiveState,
                 dispatcher: Dispatcher, metrics: RouterMetrics, tracer: Tracer, access_log: AccessLog,
                 swarm: Swarm | None = None) -> None:
        self.policies = policies
        self.classifier = classifier
        self.live = live
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.tracer = tracer
        self.accounting = Accounting(metrics, access_log)
        self.swarm = swarm
        self.tenants: TenantGate | None = None  # hook (issue 14): set by Services.build
        self.cascade = Cascade(dispatcher=dispatcher, signals=live, metrics=metrics, tracer=tracer)  # hook (issue 17)

    async def serve(self, body: dict[str, Any], headers: Mapping[str, str], *, arrived: float,
                    api: str = CHAT_API, tenant: str | None = None, size: int = 0,
                    native: NativeRequest | None = None) -> Answer | AnswerStream:
        """The whole request: trace, prepare, carry out (a stream when the body asks for one).
        ``size``: the raw body's bytes (a big body is prepared in turns, see ``router.offload``);
        ``native``: the client's own body for routes that speak its protocol (``Routed.native``)."""
        trace = self.tracer.start_request(body.get("model"))  # ends with the answer or the stream
        rate_headers: dict[str, str] = {}
        memo = LabelMemo()
        try:
            with trace.activate():
                if size < offload.OFFLOAD_BYTES:  # the usual request: at once (offload.sized without its coroutine)
                    routed = self.prepare(body, headers, arrived=arrived, trace=trace, api=api, tenant=tenant,
                                          may_queue=self.tenants is not None, memo=memo)
                else:
                    routed = await offload.sized(size, self.prepare, body, headers, arrived=arrived, trace=trace,
                                                 api=api, tenant=tenant, may_queue=self.tenants is not None,
                                                 memo=memo)
                if self.tenants is not None:  # hook: tenants — queue for capacity, rate limits, budget
                    routed = await self.tenants.admit(
                        routed, lambda: self.prepare(body, headers, arrived=arrived, trace=trace, api=api,
                                                     tenant=tenant, may_queue=True, memo=memo),
                        self._raise_infeasible, cascade=self.cascade.planned)  # hook: the cascade's call reserved too
                    rate_headers = routed.admitted.headers if routed.admitted is not None else {}
                routed = await self.cascade.label(routed, lambda given: self.prepare(  # hook (issue 17): unsure label
                    body, headers, arrived=arrived, dry_run=True, trace=trace, api=api, tenant=tenant,
                    given_label=given, memo=memo))
                routed.native = native  # hook: /v1/messages → Claude without a double translation
                out = await self.stream(routed) if body.get("stream") else await self.complete(routed)
                out.headers.update(rate_headers)  # x-ratelimit-* on every answer
                return out
        except errors.RouterError as exc:
            trace.end(error=exc.type)
            for name, value in rate_headers.items():
                exc.headers.setdefault(name, value)
            raise
        except asyncio.CancelledError:
            trace.end(error="cancelled")
            raise

    # --- prepare: classify and decide -------------------------------------------------------------
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
            if span.recording:  # not tracing: no attribute dict per request
                span.set_attributes({"router.task_type": result.task_type,
                                     "router.confidence": float(result.confidence),
                                     "router.label_source": result.label_source})  # issue 17: model | rule
        self.metrics.classifier_confidence.labels(result.task_type).observe(result.confidence)
        label = Label(result.task_type, float(result.confidence), result.answer_length, int(result.subtasks))
        return label, dict(result.probabilities), result.rule

    def prepare(self, body: dict[str, Any], headers: Mapping[str, str], *, arrived: float | None = None,
                dry_run: bool = False, trace: RequestTrace = NO_TRACE, api: str = CHAT_API,
                tenant: str | None = None, may_queue: bool = False,
                given_label: tuple[Label, dict[str, float], str | None] | None = None,
                memo: LabelMemo | None = None) -> Routed:
        arrived = time.perf_counter() if arrived is None else arrived
        request = validate_chat_request(body)
        controls = parse_controls(headers, request.router)
        loaded = self.policies.current  # this request keeps this policy, whatever reloads happen
        key = getattr(tenant, "limits", None)  # hook: tenants — the calling key's limits (router.tenancy.Tenant)
        key = key if isinstance(key, KeyLimits) else None
        if key is not None:  # swarm caps, then 403 for a model, route or mode the key may not use
            loaded = tenant_policy(key, loaded)
        forced_mode, direct_route = resolve_model(loaded, request.model, controls)
        remember_mode(body, forced_mode or controls.mode)  # vendor routes translate it (dispatch/modes.py)
        if key is not None:
            key.check_request(request.model, forced_mode, direct_route)
        facts = extract_facts(body)
        if given_label is not None:  # hook (issue 17): the cascade's label
            label, probabilities, rule = given_label
        elif memo is not None and memo.value is not None:  # prepared before, while it waited for room
            label, probabilities, rule = memo.value
        else:
            label, probabilities, rule = self._label(loaded, body, facts, controls)
        if memo is not None:  # the label this request keeps (the cascade's, once it relabelled)
            memo.value = label, probabilities, rule
        defaults = loaded.policy.defaults
        limits = Limits(
            max_cost_usd=min(defaults.max_cost_usd, controls.max_cost_usd or defaults.max_cost_usd),
            latency_budget_ms=min(defaults.latency_budget_ms,
                                  controls.latency_budget_ms or defaults.latency_budget_ms))
        if key is not None:  # hook: tenants — the strictest of tenant, policy, header and body
            limits = key.request_limits(defaults.max_cost_usd, defaults.latency_budget_ms,
                                        controls.max_cost_usd, controls.latency_budget_ms)
        with self.tracer.span("router.decide") as span:
            decision = decide(loaded.policy, facts, label, limits, self.live,
                              forced_mode=forced_mode, direct_route=direct_route,
                              # exploration's randomness comes from here, so decide() stays pure
                              explore_draw=random.random() if loaded.policy.exploration.rate else None)
            if key is not None:  # hook: tenants — only the routes this key may use stay in the chain
                key.restrict(decision)
            if decision.chosen is not None and span.recording:
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
                        trace=trace, api=api, tenant=tenant)
        if decision.chosen is None and not dry_run:
            if may_queue and TenantGate.queueable(decision):  # hook: the caller waits in the admission queue
                return routed
            self._raise_infeasible(routed)
        return routed

    def _raise_infeasible(self, routed: Routed) -> None:
        decision = routed.decision
        self.accounting.infeasible(routed)
        message = (f"No route can serve this {routed.label.task_type} request within "
                   f"${decision.limits.max_cost_usd:g} and {decision.limits.latency_budget_ms:g} ms: "
                   f"{decision.explain_rejections()}.")
        request_id = {"x-router-request-id": routed.request_id}
        if decision.unavailable:  # some route would fit once its circuit closes / queue drains
            raise errors.Unavailable(message, headers={"retry-after": "1", **request_id})
        raise errors.RouteInfeasible(message, headers=request_id)

    # --- carry out ---------------------------------------------------------------------------------
    @staticmethod
    def _deadline(routed: Routed) -> float | None:
        """When the latency budget runs out (``perf_counter``); best effort has none."""
        if routed.decision.best_effort:
            return None
        return routed.arrived + routed.decision.limits.latency_budget_ms / 1000

    def _swarm(self) -> Swarm:
        if self.swarm is None:
            raise errors.Unavailable("Swarm mode is not available in this deployment.")
        return self.swarm

    async def complete(self, routed: Routed) -> Answer:
        try:
            if routed.chosen.route == taxonomy.SWARM_ROUTE:
                return await self._complete_swarm(routed)
            return await self._complete_single(routed)
        except asyncio.CancelledError:  # the client went away: still one metric and one log line
            self.accounting.cancelled(routed)
            raise

    async def _complete_single(self, routed: Routed) -> Answer:
        try:
            answer = await self.dispatcher.complete(routed.loaded, routed.decision.chain, routed.body, routed.facts,
                                                    routed.decision.spend_limit_usd, deadline=self._deadline(routed),
                                                    native=routed.native)
        except errors.RouterError as exc:
            self.accounting.failed(routed, exc)
            raise
        cand = answer.candidate
        router_obj = routed.router_object(route=cand.route, mode=cand.mode, fallbacks=answer.log.failed,
                                          cost_usd=answer.cost_usd, known_adjusted=answer.log.adjusted)
        self.accounting.finished(routed, route=cand.route, mode=cand.mode, status="ok", usage=answer.usage,
                                 cost=answer.cost_usd, upstream_s=answer.log.upstream_s,
                                 fallbacks=answer.log.failed)
        return Answer(routed, answer.response, router_obj, routed.headers(router_obj), answer.usage)

    async def _complete_swarm(self, routed: Routed) -> Answer:
        swarm = self._swarm()
        try:
            result = await swarm.complete(routed)
        except errors.RouterError as exc:
            self.accounting.failed(routed, exc)
            raise
        router_obj = routed.router_object(route=taxonomy.SWARM_ROUTE, mode="swarm", fallbacks=result.log.failed,
                                          cost_usd=result.cost_usd, swarm=result.swarm)
        self.accounting.finished(routed, route=taxonomy.SWARM_ROUTE, mode="swarm", status="ok", usage=result.usage,
                                 cost=result.cost_usd, upstream_s=result.log.upstream_s,
                                 fallbacks=result.log.failed)
        return Answer(routed, result.response, router_obj, routed.headers(router_obj), result.usage)

    async def stream(self, routed: Routed) -> AnswerStream:
        """Open the upstream stream (with fallbacks) before anything is sent; chunks follow."""
        if routed.chosen.route == taxonomy.SWARM_ROUTE:
            swarm_stream = self._swarm().stream(routed)
            head = routed.router_object(route=taxonomy.SWARM_ROUTE, mode="swarm", fallbacks=0, cost_usd=None)
            return AnswerStream(routed, routed.headers(head), lambda out, renderer: swarm_frames(
                routed, swarm_stream, out, renderer, accounting=self.accounting))
        try:
            opened = await self.dispatcher.open_stream(routed.loaded, routed.decision.chain, routed.body,
                                                       routed.facts, routed.decision.spend_limit_usd,
                                                       deadline=self._deadline(routed), native=routed.native)
        except errors.RouterError as exc:
            self.accounting.failed(routed, exc)
            raise
        except asyncio.CancelledError:
            self.accounting.cancelled(routed)
            raise
        cand = opened.candidate
        head = routed.router_object(route=cand.route, mode=cand.mode, fallbacks=opened.log.failed, cost_usd=None,
                                    known_adjusted=opened.log.adjusted)
        return AnswerStream(routed, routed.headers(head), lambda out, renderer: upstream_frames(
            routed, opened, out, renderer, dispatcher=self.dispatcher, tracer=self.tracer,
            accounting=self.accounting))
