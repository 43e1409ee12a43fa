"""Accounting at the request's far edge: metrics, one access-log line, the end of the request's trace.

Every request ends here exactly once per outcome — answered, failed, infeasible or cancelled — on
every front door, so the numbers on the dashboards and the lines in the log cannot disagree.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from router import errors
from router.dispatch.upstream import Usage
from router.exchange import Routed
from router.observability.access_log import AccessLog
from router.observability.metrics import RouterMetrics

if TYPE_CHECKING:
    from router.tuning.recorder import DecisionRecorder

# A failed request's status, by the HTTP status of its error (anything else: the upstream's fault).
_FAILED_STATUS = {429: "rate_limited", 504: "timeout", 400: "client_error"}


class Accounting:
    recorder: DecisionRecorder | None = None  # the tuning loop's end-edge hook (set by Services.build)

    def __init__(self, metrics: RouterMetrics, access_log: AccessLog) -> None:
        self.metrics = metrics
        self.access_log = access_log

    def finished(self, routed: Routed, *, route: str, mode: str, status: str, usage: Usage, cost: float,
                 upstream_s: float, fallbacks: int, ttft_s: float | None = None) -> None:
        total = time.perf_counter() - routed.arrived
        m = self.metrics
        m.requests.labels(route, routed.label.task_type, mode, status, routed.api).inc()
        m.request_duration.labels(route, routed.api).observe(total)
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
        if self.recorder is not None:  # decision log + feedback window + shadow (off the request thread)
            self.recorder.finished(routed, route=route, mode=mode, status=status, usage=usage, cost=cost,
                                   fallbacks=fallbacks, duration_s=total, ttft_s=ttft_s)
        if routed.admitted is not None:  # hook: tenants — settle the reservation with the actual spend
            routed.admitted.finish(route, status, cost, usage.input_tokens + usage.output_tokens)
        if routed.trace.recording:  # not tracing: no attribute dict per request
            self._end_trace(routed, route=route, mode=mode, status=status, usage=usage, cost=cost,
                            fallbacks=fallbacks)

    @staticmethod
    def _end_trace(routed: Routed, *, route: str, mode: str, status: str, usage: Usage, cost: float,
                   fallbacks: int) -> None:
        routed.trace.end({"router.request_id": routed.request_id, "router.api": routed.api,
                          "router.task_type": routed.label.task_type, "router.confidence": routed.label.confidence,
                          "router.route": route, "router.mode": mode, "router.status": status,
                          "router.estimated_cost_usd": routed.candidate(route).cost_usd,
                          "router.cost_usd": round(cost, 8),
                          "router.fallbacks": fallbacks, "gen_ai.usage.input_tokens": usage.input_tokens,
                          "gen_ai.usage.output_tokens": usage.output_tokens},
                         error=None if status == "ok" else status)

    def failed(self, routed: Routed, exc: errors.RouterError) -> None:
        """Every attempt failed (or the swarm did): the request ends with ``exc``."""
        status = _FAILED_STATUS.get(exc.status, "upstream_error")
        exc.headers.setdefault("x-router-request-id", routed.request_id)
        self.finished(routed, route=routed.chosen.route, mode=routed.chosen.mode, status=status, usage=Usage(),
                      cost=0.0, upstream_s=exc.upstream_s, fallbacks=exc.failed_attempts)

    def cancelled(self, routed: Routed) -> None:
        """The client went away before the answer: still one metric and one log line."""
        self.finished(routed, route=routed.chosen.route, mode=routed.chosen.mode, status="cancelled",
                      usage=Usage(), cost=0.0, upstream_s=0.0, fallbacks=0)

    def infeasible(self, routed: Routed) -> None:
        """No route could serve the request within its limits."""
        self.metrics.requests.labels("none", routed.label.task_type, "none", "infeasible", routed.api).inc()
        self.access_log.write(routed, route="none", mode="none", status="infeasible", usage=Usage(), cost=0.0,
                              fallbacks=0, duration_s=time.perf_counter() - routed.arrived, ttft_s=None)
        if self.recorder is not None:
            self.recorder.finished(routed, route="none", mode="none", status="infeasible", usage=Usage(), cost=0.0,
                                   fallbacks=0, duration_s=time.perf_counter() - routed.arrived, ttft_s=None)
        routed.trace.end({"router.request_id": routed.request_id, "router.api": routed.api,
                          "router.task_type": routed.label.task_type, "router.confidence": routed.label.confidence,
                          "router.status": "infeasible"},
                         error="route_infeasible")
