"""One structured JSON line per request, with the decision — never prompt text or keys.

Lines go through a queue to a background thread, so the event loop never blocks on a write.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import sys
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from router.dispatch.upstream import Usage
    from router.serving import Routed


class AccessLog:
    def __init__(self, stream: Any = None, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._logger = logging.getLogger("router.access")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        self._queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self._handler = logging.StreamHandler(stream or sys.stderr)
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self._listener = logging.handlers.QueueListener(self._queue, self._handler)
        self._queue_handler = logging.handlers.QueueHandler(self._queue)
        self._logger.handlers = [self._queue_handler]
        self._listener.start()

    def write(self, routed: Routed, *, route: str, mode: str, status: str, usage: Usage, cost: float,
              fallbacks: int, duration_s: float, ttft_s: float | None) -> None:
        if not self.enabled:
            return
        chosen = routed.decision.chosen
        record: dict[str, Any] = {
            "event": "chat", "request_id": routed.request_id, "status": status, "route": route, "mode": mode,
            "task_type": routed.label.task_type, "confidence": round(routed.label.confidence, 4),
            "rule": routed.rule, "stream": routed.facts.stream,
            "estimated_cost_usd": round(chosen.cost_usd, 8) if chosen else None,
            "cost_usd": round(cost, 8), "max_cost_usd": routed.decision.limits.max_cost_usd,
            "latency_budget_ms": routed.decision.limits.latency_budget_ms,
            "estimated_latency_ms": round(chosen.latency_ms, 1) if chosen else None,
            "duration_ms": round(duration_s * 1000, 2),
            "ttft_ms": None if ttft_s is None else round(ttft_s * 1000, 2),
            "decision_ms": round(routed.decision_ms, 3), "fallbacks": fallbacks,
            "fallback_chain": [c.route for c in routed.decision.fallbacks],
            "rejected": {c.route: c.reasons for c in routed.decision.candidates if c.reasons},
            "tokens": {"input": usage.input_tokens, "output": usage.output_tokens,
                       "reasoning": usage.reasoning_tokens},
        }
        self._logger.info(orjson.dumps(record).decode())

    def close(self) -> None:
        self._listener.stop()
