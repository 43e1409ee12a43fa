"""One structured JSON line per request, with the decision — never prompt text or keys.

The line is built from the decision and the outcome only (labels, routes, numbers, the request and
trace ids), so there is nothing secret to redact. Lines go through a queue to a writer thread, so
the event loop never blocks on a write. The writer wakes at most every ``LINGER_S`` and takes every
line waiting: waking a thread per line (a futex and a GIL hand-over each) cost the event loop more
than building the line (py-spy, issue 16). Each ``AccessLog`` owns its queue, thread and stream (no
shared ``logging`` logger), so two gateways in one process never write into each other's stream.
"""

from __future__ import annotations

import collections
import io
import sys
import threading
import time
from typing import IO, Any

import orjson

from router.dispatch.upstream import Usage
from router.exchange import Routed

# How long the writer lets lines gather after the first one: a line reaches the stream within
# ~LINGER_S, and under load one write carries many lines.
LINGER_S = 0.02


class AccessLog:
    def __init__(self, stream: IO[str] | IO[bytes] | None = None, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._stream: Any = stream if stream is not None else sys.stderr
        self._binary = isinstance(self._stream, io.RawIOBase | io.BufferedIOBase)
        self._lines: collections.deque[bytes] = collections.deque()  # append/popleft are thread-safe
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._drain, name="access-log", daemon=True)
        self._thread.start()

    def write(self, routed: Routed, *, route: str, mode: str, status: str, usage: Usage, cost: float,
              fallbacks: int, duration_s: float, ttft_s: float | None) -> None:
        if not self.enabled:
            return
        # The estimates of the route that answered (after fallbacks), as the x-router-* headers say.
        chosen = routed.candidate(route) if routed.decision.chosen is not None else None
        record: dict[str, Any] = {
            "ts": time.time(), "event": "chat", "api": routed.api, "request_id": routed.request_id,
            "trace_id": routed.trace.trace_id, "status": status, "route": route, "mode": mode,
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
            "tenant": routed.tenant,  # the tenant's name only (never a key, a key id or a hash)
        }
        self._lines.append(orjson.dumps(record) + b"\n")
        if not self._wake.is_set():  # the writer is asleep: one wake-up for this and what follows
            self._wake.set()

    def _drain(self) -> None:
        while True:
            self._wake.wait()
            if not self._closing:
                time.sleep(LINGER_S)  # let the lines of the next few ms join this write
            # Cleared before taking lines: a line appended after this sets the event again.
            self._wake.clear()
            batch: list[bytes] = []
            while self._lines:
                batch.append(self._lines.popleft())
            try:
                if batch:
                    data = b"".join(batch)
                    self._stream.write(data if self._binary else data.decode())
                    self._stream.flush()
            except (OSError, ValueError):  # a closed stream must not kill the gateway
                pass
            if self._closing and not self._lines:
                return

    def close(self) -> None:
        """Write what is queued, then stop the writer thread."""
        if self._thread.is_alive():
            self._closing = True
            self._wake.set()
            self._thread.join(timeout=5)
