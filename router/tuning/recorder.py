"""The gateway's side of the tuning loop: at each request's end edge, remember and log the decision.

``DecisionRecorder.finished(...)`` runs on the request thread and does only two cheap things: it
remembers the request id for feedback (``AnsweredRequests``) and queues ``(routed, outcome)`` for the
decision log's writer thread. That thread builds the record (``router.tuning.record``), counts
exploration, decides the shadow policy on it (metrics), and writes the JSON line. Feedback lines go
through the same stream.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from router.feedback import AnsweredRequests
from router.observability.decision_log import DecisionLog
from router.observability.metrics import RouterMetrics
from router.tuning.record import Outcome, decision_record
from router.tuning.shadow import ShadowPolicy, shadow_path

if TYPE_CHECKING:
    from router.dispatch.upstream import Usage
    from router.exchange import Routed


class DecisionRecorder:
    def __init__(self, *, metrics: RouterMetrics, log_target: str | None = None, max_mb: float = 100,
                 files: int = 10, log_prompts: bool = False, shadow_setting: str | None = None,
                 env: Mapping[str, str] | None = None, answered: AnsweredRequests | None = None) -> None:
        self.metrics = metrics
        self.answered = answered or AnsweredRequests()
        self._log_prompts = log_prompts
        self._shadow_setting = shadow_setting
        self._env = dict(env or {})
        self._shadows: dict[Path, ShadowPolicy] = {}
        for reason in ("queue_full", "write_error", "render_error"):  # series exist (at 0) from the start
            metrics.decision_log_dropped.labels(reason)
        self.log = DecisionLog(
            log_target, render=self._render, max_bytes=int(max_mb * 1024 * 1024), files=files,
            on_drop=lambda reason, n: metrics.decision_log_dropped.labels(reason).inc(n),
            on_written=metrics.decision_log_records.inc)

    # --- request thread -----------------------------------------------------------------------
    def finished(self, routed: Routed, *, route: str, mode: str, status: str, usage: Usage, cost: float,
                 fallbacks: int, duration_s: float, ttft_s: float | None) -> None:
        """The request's end edge (where metrics and the access log are written)."""
        self.answered.remember(routed.request_id, route, routed.label.task_type)
        if self.log.target is not None or self._wants_shadow(routed):
            # A plain tuple: the Outcome is built on the writer thread (every µs here is a request's).
            if self.log.submit((routed, status, route, mode, usage, cost, fallbacks, duration_s, ttft_s, time.time())):
                return  # the writer counts an explored request (see _render)
        if routed.decision.explored:
            self._count_explored(route, routed.label.task_type)

    def _count_explored(self, route: str, task_type: str) -> None:
        # On the writer thread when a record is queued: right after an idle gap (caches cold) the
        # counter's inc() cost the request thread ~10 µs, the largest item in finished()'s p99.
        self.metrics.exploration.labels(route, task_type).inc()

    def _wants_shadow(self, routed: Routed) -> bool:
        return bool(self._shadow_setting or routed.loaded.policy.shadow)

    def record_feedback(self, record: dict[str, Any]) -> None:
        self.log.submit(orjson.dumps(record) + b"\n")

    # --- writer thread ------------------------------------------------------------------------
    def _render(self, item: Any) -> bytes | None:
        if isinstance(item, bytes):
            return item
        routed, *ended = item
        outcome = Outcome(*ended)
        if routed.decision.explored:
            self._count_explored(outcome.route, routed.label.task_type)
        record = decision_record(routed, outcome, log_prompts=self._log_prompts)
        if routed.decision.chosen is not None and outcome.status == "ok":
            self._shadow(routed, record)
        return orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"

    def _shadow(self, routed: Routed, record: dict[str, Any]) -> None:
        path = shadow_path(routed.loaded.source, routed.loaded.policy.shadow, self._shadow_setting)
        if path is None:
            return
        shadow = self._shadows.get(path)
        if shadow is None:
            shadow = self._shadows[path] = ShadowPolicy(path, env=self._env)
        decision = shadow.decide(record)
        if decision is None:
            return
        shadow_route = decision.chosen.route if decision.chosen else "none"
        record["shadow_route"] = shadow_route
        m = self.metrics
        m.shadow_decisions.labels(record["route"], shadow_route).inc()
        m.shadow_live_estimated_cost.labels(record["route"]).inc(record["est_cost_usd"] or 0.0)
        if decision.chosen is not None:
            m.shadow_estimated_cost.labels(shadow_route).inc(decision.chosen.cost_usd)

    def close(self) -> None:
        self.log.close()
