"""Live per-route and per-backend state: EWMA latency estimates, circuits, in-flight counts, queue.

It implements ``Signals`` for the decision and survives policy reloads (state is keyed by name;
settings come from the policy in force). A request that started under an older policy may still
ask about a route or backend the new policy dropped: it gets the last values known (or neutral
ones), never a KeyError.

Latency model per route: ``ttft_ms + generated_tokens / output_tokens_per_s``. Streams measure
both terms directly. A non-streamed answer only shows the total, so the prediction is rescaled to
the observed total (both terms by the same factor): the sum is learned exactly, the split is kept.
An estimate nobody has refreshed for ``STALE_AFTER_S`` relaxes back towards the policy's prior, so
a route that was slow once is tried again rather than shunned forever.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from router.engine.circuit import CircuitBreaker
from router.engine.signals import BackendSignals, RouteSignals
from router.policy.model import CircuitSettings, Policy, RetrySettings

# Weight of the newest observation. 0.3 moves the estimate 97% of the way within 10 requests.
EWMA_ALPHA = 0.3
STALE_AFTER_S = 60.0
RELAX_HALF_LIFE_S = 60.0
# Output tokens of a typical request, to turn throughput into a service time for queue waits.
TYPICAL_OUTPUT_TOKENS = 300
_NEUTRAL = RouteSignals(500.0, 60.0)
_NO_QUEUE_WAIT_MS = 0.0
# Recent observations kept per route for the hang floor's quantile (a p99 needs ~100+ to mean much).
SAMPLE_WINDOW = 256


class _Samples:
    """The last ``SAMPLE_WINDOW`` durations of a route (ms), and the same values kept sorted.

    Every answer adds one and every attempt reads a quantile, so the sorted copy is kept up to date
    (bisect out the value leaving the window, bisect in the new one: ~1 µs) instead of re-sorted on
    the next read (``sorted`` of 256 floats: ~10 µs, once per request)."""

    __slots__ = ("_recent", "_sorted")

    def __init__(self) -> None:
        self._recent: deque[float] = deque(maxlen=SAMPLE_WINDOW)
        self._sorted: list[float] = []

    def add(self, ms: float) -> None:
        if ms != ms:  # NaN: nothing to learn, and no place in a sorted list
            return
        recent = self._recent
        if len(recent) == SAMPLE_WINDOW:  # the oldest leaves the window (and the sorted copy)
            del self._sorted[bisect.bisect_left(self._sorted, recent[0])]
        recent.append(ms)
        bisect.insort(self._sorted, ms)

    def __len__(self) -> int:
        return len(self._recent)

    def quantile(self, q: float) -> float:
        values = self._sorted
        return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


@dataclass(slots=True)
class _RouteStat:
    ttft_ms: float
    tokens_per_s: float
    prior_ttft_ms: float
    prior_tokens_per_s: float
    samples: int = 0
    last_at: float = 0.0
    ttfts: _Samples = field(default_factory=_Samples)  # streams: time to the first token
    totals: _Samples = field(default_factory=_Samples)  # JSON answers: the whole answer


@dataclass(slots=True)
class _EngineQueue:
    waiting: float | None = None
    running: float | None = None
    kv_usage: float | None = None


class LiveState:
    def __init__(self, policy: Policy, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._policy = policy
        self._clock = clock
        self._routes: dict[str, _RouteStat] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._inflight: dict[str, int] = {}
        self._queues: dict[str, _EngineQueue] = {}
        self._service_ms: dict[str, float] = {}  # per backend, worked out when read after a change
        self._stale_service: set[str] = set()  # backends observed (or re-priored) since
        self.on_release: Callable[[str], None] | None = None  # a slot freed (the admission queue listens)
        self.apply_policy(policy)

    def apply_policy(self, policy: Policy) -> None:
        self._policy = policy
        for name in policy.backends:
            breaker = self._breakers.get(name)
            if breaker is None or breaker.settings != policy.circuit:
                self._breakers[name] = CircuitBreaker(policy.circuit, self._clock)
            self._inflight.setdefault(name, 0)
            self._queues.setdefault(name, _EngineQueue())
        for route in policy.routes:
            latency = policy.backends[route.partition(":")[0]].latency
            stat = self._routes.get(route)
            if stat is None:
                self._routes[route] = _RouteStat(latency.ttft_ms, latency.output_tokens_per_s,
                                                 latency.ttft_ms, latency.output_tokens_per_s)
            else:  # keep what was learned; relax towards the new prior
                stat.prior_ttft_ms, stat.prior_tokens_per_s = latency.ttft_ms, latency.output_tokens_per_s
        self._stale_service.update(policy.backends)

    # --- Signals -----------------------------------------------------------------------------
    def route(self, route: str) -> RouteSignals:
        stat = self._routes.get(route)
        if stat is None:
            backend = self._policy.backends.get(route.partition(":")[0])
            if backend is None:
                return _NEUTRAL
            return RouteSignals(backend.latency.ttft_ms, backend.latency.output_tokens_per_s)
        if stat.samples:
            age = self._clock() - stat.last_at
            if age > STALE_AFTER_S:
                keep = 0.5 ** ((age - STALE_AFTER_S) / RELAX_HALF_LIFE_S)
                return RouteSignals(stat.prior_ttft_ms + (stat.ttft_ms - stat.prior_ttft_ms) * keep,
                                    stat.prior_tokens_per_s + (stat.tokens_per_s - stat.prior_tokens_per_s) * keep)
        return RouteSignals(stat.ttft_ms, stat.tokens_per_s)

    def backend(self, backend: str) -> BackendSignals:
        queue = self._queues.get(backend)
        breaker = self._breakers.get(backend)
        circuit = breaker.state if breaker is not None else "closed"
        inflight = self._inflight.get(backend, 0)
        if queue is None or queue.waiting is None:
            return BackendSignals(circuit=circuit, inflight=inflight)
        wait_ms = _NO_QUEUE_WAIT_MS
        if queue.waiting > 0:
            # Little's law, roughly: slots free up at running / service time; we wait for those ahead.
            if backend in self._stale_service:
                self._refresh_service(backend)
            service_ms = self._service_ms.get(backend, 1000.0)
            wait_ms = queue.waiting * service_ms / max(queue.running or 0.0, 1.0)
        return BackendSignals(circuit=circuit, inflight=inflight, queue_waiting=queue.waiting,
                              queue_wait_ms=wait_ms)

    def _refresh_service(self, backend: str) -> None:
        """Mean service time of a typical request over the backend's routes (for queue waits).

        Worked out on the first read after an observation, not on every observation: every answer
        is observed, while only a backend with a waiting engine queue is ever read."""
        self._stale_service.discard(backend)
        prefix = backend + ":"
        total, count = 0.0, 0
        for name, stat in self._routes.items():
            if name.startswith(prefix):
                total += stat.ttft_ms + TYPICAL_OUTPUT_TOKENS / stat.tokens_per_s * 1000.0
                count += 1
        self._service_ms[backend] = total / count if count else 1000.0

    # --- observations --------------------------------------------------------------------------
    def observe_latency(self, route: str, *, ttft_ms: float | None, output_tokens: int,
                        generation_s: float | None) -> None:
        """A stream: time to the first token and the generation speed after it, measured apart."""
        stat = self._routes.get(route)
        if stat is None:
            return
        if ttft_ms is not None and ttft_ms >= 0:
            stat.ttft_ms += EWMA_ALPHA * (ttft_ms - stat.ttft_ms)
            stat.ttfts.add(ttft_ms)
        if generation_s and generation_s > 0.005 and output_tokens >= 8:
            stat.tokens_per_s += EWMA_ALPHA * (output_tokens / generation_s - stat.tokens_per_s)
        stat.samples += 1
        stat.last_at = self._clock()
        self._stale_service.add(route.partition(":")[0])

    def observe_total(self, route: str, *, total_ms: float, output_tokens: int) -> None:
        """A non-streamed answer: only the whole duration is known (see the module docstring)."""
        stat = self._routes.get(route)
        if stat is None or total_ms <= 0:
            return
        stat.totals.add(total_ms)
        if output_tokens < 8:  # nearly all of it was the wait for the first token
            stat.ttft_ms += EWMA_ALPHA * (total_ms - stat.ttft_ms)
        else:
            predicted = stat.ttft_ms + output_tokens / stat.tokens_per_s * 1000.0
            scale = min(50.0, max(0.02, total_ms / predicted))
            stat.ttft_ms += EWMA_ALPHA * (stat.ttft_ms * scale - stat.ttft_ms)
            stat.tokens_per_s += EWMA_ALPHA * (stat.tokens_per_s / scale - stat.tokens_per_s)
        stat.samples += 1
        stat.last_at = self._clock()
        self._stale_service.add(route.partition(":")[0])

    def hang_floor_s(self, route: str, retry: RetrySettings, ceiling_s: float, *, stream: bool) -> float:
        """How long an attempt on ``route`` may go without its first token (stream) or its answer
        (JSON) before it counts as hung: ``first_token_factor`` x the route's observed
        ``first_token_quantile``, within [``first_token_min_s``, ``ceiling_s``]; ``ceiling_s`` (the
        backend's ``first_token_timeout_s``) until the route has enough observations, and again
        when it has had no success for ``STALE_AFTER_S``."""
        stat = self._routes.get(route)
        samples = None if stat is None else stat.ttfts if stream else stat.totals
        if retry.first_token_factor <= 0 or samples is None or len(samples) < retry.first_token_min_samples:
            return ceiling_s
        if stat is not None and self._clock() - stat.last_at > STALE_AFTER_S:
            # No success for a while: only successes are learned (the ones cut as hung are not), so a
            # route that became slower than its floor would never be learned again — relearn from
            # the ceiling.
            return ceiling_s
        learned = retry.first_token_factor * samples.quantile(retry.first_token_quantile) / 1000.0
        return min(ceiling_s, max(retry.first_token_min_s, learned))

    def breaker(self, backend: str) -> CircuitBreaker:
        breaker = self._breakers.get(backend)
        if breaker is None:  # a backend of an older (or newer) policy than the one applied
            breaker = self._breakers[backend] = CircuitBreaker(self._circuit_settings(), self._clock)
        return breaker

    def _circuit_settings(self) -> CircuitSettings:
        return self._policy.circuit

    def circuit_states(self) -> dict[str, str]:
        return {name: b.state for name, b in self._breakers.items()}

    def inflight(self, backend: str) -> int:
        return self._inflight.get(backend, 0)

    def add_inflight(self, backend: str, delta: int) -> int:
        value = self._inflight.get(backend, 0) + delta
        self._inflight[backend] = value
        if delta < 0 and self.on_release is not None:
            self.on_release(backend)
        return value

    def set_queue(self, backend: str, *, waiting: float | None, running: float | None,
                  kv_usage: float | None) -> None:
        self._queues[backend] = _EngineQueue(waiting, running, kv_usage)

    def queue(self, backend: str) -> dict[str, float | None]:
        q = self._queues.get(backend) or _EngineQueue()
        return {"waiting": q.waiting, "running": q.running, "kv_cache_usage": q.kv_usage,
                "expected_wait_ms": round(self.backend(backend).queue_wait_ms, 1)}

    def route_stats(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for name, stat in self._routes.items():
            now = self.route(name)
            out[name] = {"ttft_ms": round(now.ttft_ms, 1), "output_tokens_per_s": round(now.output_tokens_per_s, 1),
                         "samples": stat.samples}
        return out
