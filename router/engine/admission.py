"""The admission queue: wait for a route at ``max_concurrency`` instead of answering 503 at once.

When the decision finds no route with room and at least one candidate fails *only* on capacity,
the request waits here — in a bounded priority queue ordered by the tenant's priority class, then
arrival — for a slot on one of those backends. It waits at most ``queue_timeout_s`` and at most
what its latency budget can spare (budget minus the candidate's estimated latency minus the time
already spent); after that the caller answers 503 with ``retry-after``. A full queue refuses at once.

A slot freed on a backend wakes the best waiter for it; the waiter decides again (the freed slot
may have gone to another request in the meantime, in which case it waits again, keeping its place).
Waiters also re-check every ``recheck_s`` as a backstop, so a missed wake-up costs milliseconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass(order=True, slots=True)
class _Waiter:
    priority: int
    seq: int
    backends: frozenset[str] = field(compare=False)
    future: asyncio.Future[None] = field(compare=False)
    done: bool = field(default=False, compare=False)


class QueueFull(Exception):
    """The queue is at its bound; the request is refused at once."""


class AdmissionQueue:
    def __init__(self, *, max_depth: int = 1024, timeout_s: float = 10.0, recheck_s: float = 0.05,
                 on_depth: Callable[[int], None] | None = None) -> None:
        self.max_depth = max_depth
        self.timeout_s = timeout_s
        self.recheck_s = recheck_s
        self._heap: list[_Waiter] = []
        self._seq = itertools.count()
        self._depth = 0
        self._on_depth = on_depth

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def enabled(self) -> bool:
        return self.timeout_s > 0 and self.max_depth > 0

    def ticket(self) -> int:
        """An arrival number: a request that waits again keeps its place."""
        return next(self._seq)

    def deadline(self, arrived: float, latency_budget_ms: float, estimated_ms: float) -> float:
        """``perf_counter`` time past which waiting is pointless: the budget could no longer be met."""
        spare_s = (latency_budget_ms - estimated_ms) / 1000
        return arrived + min(self.timeout_s + (time.perf_counter() - arrived), spare_s)

    def released(self, backend: str) -> None:
        """A slot on ``backend`` is free: wake the best waiter for it (call from the event loop)."""
        skipped: list[_Waiter] = []
        while self._heap:
            waiter = heapq.heappop(self._heap)
            if waiter.done:
                continue
            if backend in waiter.backends:
                waiter.done = True
                if not waiter.future.done():
                    waiter.future.set_result(None)
                break
            skipped.append(waiter)
        for waiter in skipped:
            heapq.heappush(self._heap, waiter)

    async def wait(self, backends: Iterable[str], *, priority: int, seq: int, deadline: float) -> bool:
        """Wait for a slot (or a re-check); False when the deadline has passed."""
        if not self.enabled:
            return False
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return False
        if self._depth >= self.max_depth:
            raise QueueFull
        waiter = _Waiter(priority, seq, frozenset(backends), asyncio.get_running_loop().create_future())
        heapq.heappush(self._heap, waiter)
        self._set_depth(+1)
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), timeout=min(remaining, self.recheck_s))
        except TimeoutError:
            pass
        finally:
            waiter.done = True
            self._set_depth(-1)
            if len(self._heap) > 4 * self._depth + 64:  # drop finished waiters left in the heap
                self._heap = [w for w in self._heap if not w.done]
                heapq.heapify(self._heap)
        return time.perf_counter() < deadline or waiter.future.done()

    def _set_depth(self, delta: int) -> None:
        self._depth += delta
        if self._on_depth is not None:
            self._on_depth(self._depth)
