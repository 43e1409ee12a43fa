"""Live per-route and per-backend state: EWMA latency estimates, circuits, in-flight counts, queue.

It implements ``Signals`` for the decision and survives policy reloads (state is keyed by name;
settings come from the policy in force).
"""

from __future__ import annotations

from dataclasses import dataclass

from router.engine.circuit import CircuitBreaker
from router.engine.signals import BackendSignals, RouteSignals
from router.policy.model import Policy

# Weight of the newest observation. 0.2 moves the estimate most of the way within ~10 requests.
EWMA_ALPHA = 0.2


@dataclass(slots=True)
class _RouteStat:
    ttft_ms: float
    tokens_per_s: float
    samples: int = 0


@dataclass(slots=True)
class _EngineQueue:
    waiting: float | None = None
    running: float | None = None
    kv_usage: float | None = None


class LiveState:
    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        self._routes: dict[str, _RouteStat] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._inflight: dict[str, int] = {}
        self._queues: dict[str, _EngineQueue] = {}
        self.apply_policy(policy)

    def apply_policy(self, policy: Policy) -> None:
        self._policy = policy
        for name in policy.backends:
            breaker = self._breakers.get(name)
            if breaker is None or breaker.settings != policy.circuit:
                self._breakers[name] = CircuitBreaker(policy.circuit)
            self._inflight.setdefault(name, 0)
            self._queues.setdefault(name, _EngineQueue())
        for route in policy.routes:
            if route not in self._routes:
                backend = policy.backends[route.partition(":")[0]]
                self._routes[route] = _RouteStat(backend.latency.ttft_ms, backend.latency.output_tokens_per_s)

    # --- Signals -----------------------------------------------------------------------------
    def route(self, route: str) -> RouteSignals:
        stat = self._routes.get(route)
        if stat is None:
            backend = self._policy.backends[route.partition(":")[0]]
            return RouteSignals(backend.latency.ttft_ms, backend.latency.output_tokens_per_s)
        return RouteSignals(stat.ttft_ms, stat.tokens_per_s)

    def backend(self, backend: str) -> BackendSignals:
        queue = self._queues.get(backend) or _EngineQueue()
        wait_ms = 0.0
        if queue.waiting and queue.running:
            # Little's law, roughly: each waiting request ahead of us costs one service time / slots.
            service_ms = self._mean_service_ms(backend)
            wait_ms = queue.waiting * service_ms / max(queue.running, 1.0)
        breaker = self._breakers.get(backend)
        return BackendSignals(circuit=breaker.state if breaker else "closed",
                              inflight=self._inflight.get(backend, 0),
                              queue_waiting=queue.waiting, queue_wait_ms=wait_ms)

    def _mean_service_ms(self, backend: str) -> float:
        stats = [s for r, s in self._routes.items() if r.startswith(backend + ":")]
        if not stats:
            return 1000.0
        return sum(s.ttft_ms + 300 / s.tokens_per_s * 1000 for s in stats) / len(stats)

    # --- observations --------------------------------------------------------------------------
    def observe_latency(self, route: str, *, ttft_ms: float | None, output_tokens: int,
                        generation_s: float | None) -> None:
        stat = self._routes.get(route)
        if stat is None:
            return
        if ttft_ms is not None and ttft_ms >= 0:
            stat.ttft_ms += EWMA_ALPHA * (ttft_ms - stat.ttft_ms)
        if generation_s and generation_s > 0.005 and output_tokens >= 8:
            stat.tokens_per_s += EWMA_ALPHA * (output_tokens / generation_s - stat.tokens_per_s)
        stat.samples += 1

    def breaker(self, backend: str) -> CircuitBreaker:
        return self._breakers[backend]

    def circuit_states(self) -> dict[str, str]:
        return {name: b.state for name, b in self._breakers.items()}

    def inflight(self, backend: str) -> int:
        return self._inflight.get(backend, 0)

    def add_inflight(self, backend: str, delta: int) -> int:
        value = self._inflight.get(backend, 0) + delta
        self._inflight[backend] = value
        return value

    def set_queue(self, backend: str, *, waiting: float | None, running: float | None,
                  kv_usage: float | None) -> None:
        self._queues[backend] = _EngineQueue(waiting, running, kv_usage)

    def queue(self, backend: str) -> dict[str, float | None]:
        q = self._queues.get(backend) or _EngineQueue()
        return {"waiting": q.waiting, "running": q.running, "kv_cache_usage": q.kv_usage}

    def route_stats(self) -> dict[str, dict[str, float]]:
        return {r: {"ttft_ms": round(s.ttft_ms, 1), "output_tokens_per_s": round(s.tokens_per_s, 1),
                    "samples": s.samples} for r, s in self._routes.items()}
