"""What one demo server knows: its spec, current behaviour, the fake engine's slots, and its stats.

All of it lives on the event loop thread that runs the server; `DemoUpstreams` reaches it from
other threads only through `asyncio.run_coroutine_threadsafe`.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from router.demo.behavior import DemoBehavior, FailureGate, ServerKind

DEFAULT_MODELS: dict[str, str] = {
    "vllm": "moonshotai/Kimi-K2.5",
    "sglang": "moonshotai/Kimi-K2.5",
    "openai": "gpt-5.2",
    "anthropic": "claude-sonnet-4-5",
    "moonshot": "kimi-k2.5",
}
# vLLM's own TTFT buckets, so dashboards built against the demo look like production.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
LAST_REQUESTS = 20


@dataclass(frozen=True, slots=True)
class DemoServerSpec:
    """One simulated upstream. `model=None` takes the kind's default model."""

    name: str
    kind: ServerKind
    model: str | None = None
    api_key: str | None = None  # when set, requests must carry it (Bearer or x-api-key)
    behavior: DemoBehavior | None = None  # initial behaviour; `reset` returns to it
    host: str = "127.0.0.1"
    port: int = 0

    @property
    def served_model(self) -> str:
        return self.model or DEFAULT_MODELS[self.kind]


class ClientGone(Exception):
    """The client closed the connection while we were writing to it."""


class EngineSlots:
    """`max_num_seqs` running sequences; the rest wait (and are reported as waiting)."""

    def __init__(self) -> None:
        self.running = 0
        self.waiting = 0
        self._waiters: list[asyncio.Future[None]] = []

    async def acquire(self, limit: int) -> None:
        while self.running >= limit:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            self.waiting += 1
            try:
                await waiter
            finally:
                self.waiting -= 1
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self.running += 1

    def release(self) -> None:
        self.running -= 1
        self.wake_all()

    def wake_all(self) -> None:
        # Everyone re-checks the limit; simpler than handing a slot over and cannot lose a wake-up.
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1


class DemoStats:
    def __init__(self) -> None:
        self.requests = 0
        self.by_mode: Counter[str] = Counter()
        self.by_role: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.rejected = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.cancelled = 0
        self.completed = 0
        self.last_requests: deque[dict[str, Any]] = deque(maxlen=LAST_REQUESTS)

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_mode": dict(self.by_mode),
            "by_role": dict(self.by_role),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "cancelled": self.cancelled,
            "completed": self.completed,
            "rejected": self.rejected,
            "injected": dict(self.injected),
            "last_requests": list(self.last_requests),
        }


class DemoServerState:
    def __init__(self, spec: DemoServerSpec) -> None:
        self.spec = spec
        self._initial = spec.behavior or DemoBehavior()
        self.behavior = self._initial.merged({})
        self.stats = DemoStats()
        self.slots = EngineSlots()
        self.gate = FailureGate()
        self.ttft = Histogram(TTFT_BUCKETS)
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0
        self._ids = 0
        self.quality: Any = None  # router.demo.quality.DemoQuality: the demo truth, when one is given

    def next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self.spec.name}{self._ids:010d}"

    def update_behavior(self, changes: Mapping[str, Any]) -> DemoBehavior:
        self.behavior = self.behavior.merged(changes)
        self.slots.wake_all()  # a larger max_num_seqs lets waiting requests in now
        return self.behavior

    def reset(self) -> None:
        self.behavior = self._initial.merged({})
        self.stats = DemoStats()
        self.gate.reset()
        self.ttft = Histogram(TTFT_BUCKETS)
        self.prompt_tokens_total = self.generation_tokens_total = 0
        self.slots.wake_all()

    @asynccontextmanager
    async def tracked(self) -> AsyncIterator[None]:
        """Counts a request as in flight; a disconnect (cancellation or failed write) as cancelled."""
        stats = self.stats
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            yield
        except (asyncio.CancelledError, ClientGone, ConnectionError):
            stats.cancelled += 1
            raise
        finally:
            stats.in_flight -= 1

    @asynccontextmanager
    async def engine_slot(self) -> AsyncIterator[float]:
        """Holds one of `max_num_seqs` slots; yields the monotonic time the work started."""
        await self.slots.acquire(self.behavior.max_num_seqs)
        try:
            yield time.monotonic()
        finally:
            self.slots.release()
