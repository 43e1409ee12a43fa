"""Shared counters: request and token rates, spend reservations and settlements.

Two backends keep the same state with the same rules: ``MemoryState`` (one process; the default)
and ``RedisState`` (every replica; ``ROUTER_REDIS_URL``). The rules:

- requests per minute: an exact sliding window (the admission times of the last 60 s);
- tokens per minute: the estimate is counted at admission and corrected to the actual count at
  settlement, in per-minute buckets read as a sliding window (the previous minute weighted by the
  part of it still inside the window);
- budgets, per UTC day and calendar month: admission *reserves* the request's worst case (granted
  in full, or what is left of the budget when that still covers the chosen route's estimate), so
  concurrent requests cannot overspend; settlement adds the actual cost and returns the
  reservation. A reservation that is never settled (a replica died mid-request) expires after its
  TTL. Settlement is idempotent per reservation id, so a retried settlement never counts twice.
Admission is all-or-nothing across every meter (tenant, key): a refused request counts nowhere.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from router.tenants.limits import Meter

WINDOW_MS = 60_000
DAY_TTL_S = 2 * 86_400
MONTH_TTL_S = 32 * 86_400
_SETTLED_MARKERS = 100_000  # in-process: a retried settlement comes back within seconds, not 100k requests


_PERIODS: dict[int, tuple[str, str]] = {}


def periods(now_ms: int) -> tuple[str, str]:
    """The UTC day and month a moment belongs to (budget periods); one computation per day."""
    day_number = now_ms // 86_400_000
    hit = _PERIODS.get(day_number)
    if hit is None:
        t = time.gmtime(day_number * 86_400)
        if len(_PERIODS) > 64:
            _PERIODS.clear()
        hit = _PERIODS[day_number] = (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}",
                                      f"{t.tm_year:04d}-{t.tm_mon:02d}")
    return hit


@dataclass(frozen=True, slots=True)
class Admission:
    tenant: str
    meters: tuple[Meter, ...]
    rid: str               # reservation id (random per request)
    reserve_usd: float     # the worst case the request may spend
    need_usd: float        # the least it can run on (its route's estimate): below that, no grant
    tokens: int            # estimated tokens, counted now and corrected at settlement
    now_ms: int
    ttl_ms: int            # an unsettled reservation is released after this


@dataclass(frozen=True, slots=True)
class Settlement:
    tenant: str
    meters: tuple[Meter, ...]
    rid: str
    actual_usd: float
    token_delta: int       # actual tokens minus the estimate counted at admission
    now_ms: int
    admitted_ms: int       # the reservation lives in the periods of its admission


@dataclass(slots=True)
class Reading:
    """One meter's counters as seen by an admission (or a peek)."""

    meter: Meter
    requests: int = 0             # admitted in the last 60 s (this one included)
    requests_reset_ms: int = 0    # until the oldest of them leaves the window
    tokens: int = 0
    tokens_reset_ms: int = 0
    daily_spent: float = 0.0
    daily_reserved: float = 0.0
    monthly_spent: float = 0.0
    monthly_reserved: float = 0.0

    def budget_left(self) -> float | None:
        lefts = []
        if self.meter.daily_usd is not None:
            lefts.append(self.meter.daily_usd - self.daily_spent - self.daily_reserved)
        if self.meter.monthly_usd is not None:
            lefts.append(self.meter.monthly_usd - self.monthly_spent - self.monthly_reserved)
        return min(lefts) if lefts else None


@dataclass(slots=True)
class Verdict:
    ok: bool
    reason: str | None = None      # "requests" | "tokens" | "budget" when refused
    granted_usd: float = 0.0
    retry_after_ms: int = 0
    readings: list[Reading] = field(default_factory=list)


class StateError(Exception):
    """The shared state could not be reached (the failure mode decides what happens)."""


class SharedState(Protocol):
    name: str

    async def admit(self, admission: Admission) -> Verdict: ...

    async def settle(self, settlement: Settlement) -> None: ...

    def settle_now(self, settlement: Settlement) -> None:
        """Apply (in-process) or queue (Redis) a settlement, without waiting."""

    async def peek(self, tenant: str, meters: tuple[Meter, ...], now_ms: int) -> list[Reading]: ...

    async def aclose(self) -> None: ...


def _token_window(buckets: dict[int, int], now_ms: int) -> tuple[float, int]:
    minute = now_ms // WINDOW_MS
    frac = (now_ms % WINDOW_MS) / WINDOW_MS
    used = buckets.get(minute - 1, 0) * (1 - frac) + buckets.get(minute, 0)
    return used, WINDOW_MS - now_ms % WINDOW_MS


@dataclass(slots=True)
class _Budget:
    spent: float = 0.0
    reserved: float = 0.0
    held: dict[str, tuple[float, int]] = field(default_factory=dict)  # rid -> (amount, expiry ms)
    next_expiry: int = 2**62  # no reservation expires before this (skip the scan until then)

    def hold(self, rid: str, amount: float, expiry: int) -> None:
        self.reserved += amount
        self.held[rid] = (amount, expiry)
        self.next_expiry = min(self.next_expiry, expiry)

    def expire(self, now_ms: int) -> None:
        if now_ms < self.next_expiry:
            return
        for rid in [r for r, (_, exp) in self.held.items() if exp <= now_ms]:
            self.reserved -= self.held.pop(rid)[0]
        self.next_expiry = min((exp for _, exp in self.held.values()), default=2**62)


class MemoryState:
    """The rules above for one process (the event loop serialises every call)."""

    name = "memory"

    def __init__(self) -> None:
        self._requests: dict[tuple[str, str], deque[int]] = {}
        self._tokens: dict[tuple[str, str], dict[int, int]] = {}
        self._budgets: dict[tuple[str, str, str], _Budget] = {}
        self._settled: dict[str, int] = {}  # rid -> when (idempotence; the newest markers are kept)

    def _read(self, tenant: str, meter: Meter, now_ms: int, day: str, month: str) -> Reading:
        reading = Reading(meter)
        log = self._requests.setdefault((tenant, meter.scope), deque())
        while log and log[0] <= now_ms - WINDOW_MS:
            log.popleft()
        reading.requests = len(log)
        reading.requests_reset_ms = (log[0] + WINDOW_MS - now_ms) if log else 0
        buckets = self._tokens.setdefault((tenant, meter.scope), {})
        used, reset = _token_window(buckets, now_ms)
        reading.tokens, reading.tokens_reset_ms = int(used), reset
        if meter.daily_usd is not None:
            b = self._budget(tenant, meter.scope, day, now_ms)
            reading.daily_spent, reading.daily_reserved = b.spent, b.reserved
        if meter.monthly_usd is not None:
            b = self._budget(tenant, meter.scope, month, now_ms)
            reading.monthly_spent, reading.monthly_reserved = b.spent, b.reserved
        return reading

    def _budget(self, tenant: str, scope: str, period: str, now_ms: int) -> _Budget:
        budget = self._budgets.setdefault((tenant, scope, period), _Budget())
        budget.expire(now_ms)
        return budget

    async def admit(self, a: Admission) -> Verdict:
        return self.admit_now(a)

    def admit_now(self, a: Admission) -> Verdict:
        day, month = periods(a.now_ms)
        readings = [self._read(a.tenant, m, a.now_ms, day, month) for m in a.meters]
        left: float | None = None
        for r in readings:
            m = r.meter
            if m.rpm is not None and r.requests + 1 > m.rpm:
                return Verdict(False, "requests", retry_after_ms=max(r.requests_reset_ms, 1), readings=readings)
            if m.tpm is not None and r.tokens > 0 and r.tokens + a.tokens > m.tpm:
                return Verdict(False, "tokens", retry_after_ms=max(r.tokens_reset_ms, 1), readings=readings)
            r_left = r.budget_left()
            if r_left is not None:
                left = r_left if left is None else min(left, r_left)
        granted = a.reserve_usd
        if left is not None and a.reserve_usd > 0:
            if left <= 0 or left < a.need_usd:
                return Verdict(False, "budget", readings=readings)
            granted = min(a.reserve_usd, left)
        minute = a.now_ms // WINDOW_MS
        for r in readings:
            m = r.meter
            self._requests[(a.tenant, m.scope)].append(a.now_ms)
            r.requests += 1
            if r.requests == 1:
                r.requests_reset_ms = WINDOW_MS
            buckets = self._tokens[(a.tenant, m.scope)]
            buckets[minute] = buckets.get(minute, 0) + a.tokens
            for old in [k for k in buckets if k < minute - 1]:
                del buckets[old]
            r.tokens += a.tokens
            if granted > 0:
                for period, limit in ((day, m.daily_usd), (month, m.monthly_usd)):
                    if limit is None:
                        continue
                    self._budgets[(a.tenant, m.scope, period)].hold(a.rid, granted, a.now_ms + a.ttl_ms)
                if m.daily_usd is not None:
                    r.daily_reserved += granted
                if m.monthly_usd is not None:
                    r.monthly_reserved += granted
        return Verdict(True, granted_usd=granted, readings=readings)

    async def settle(self, s: Settlement) -> None:
        self.settle_now(s)

    def settle_now(self, s: Settlement) -> None:
        if s.rid in self._settled:
            return
        self._settled[s.rid] = s.now_ms
        while len(self._settled) > _SETTLED_MARKERS:  # oldest first (dicts keep insertion order)
            del self._settled[next(iter(self._settled))]
        day, month = periods(s.now_ms)
        admitted_in = periods(s.admitted_ms)
        held_in = {day: day, month: month} if admitted_in == (day, month) else \
            dict(zip((day, month), admitted_in, strict=True))
        minute = s.now_ms // WINDOW_MS
        for m in s.meters:
            if s.token_delta:
                buckets = self._tokens.setdefault((s.tenant, m.scope), {})
                buckets[minute] = max(0, buckets.get(minute, 0) + s.token_delta)
            for period, limit in ((day, m.daily_usd), (month, m.monthly_usd)):
                if limit is None:
                    continue
                budget = self._budget(s.tenant, m.scope, period, s.now_ms)
                reserved_in = budget if held_in[period] == period else \
                    self._budget(s.tenant, m.scope, held_in[period], s.now_ms)
                held = reserved_in.held.pop(s.rid, None)
                if held is not None:
                    reserved_in.reserved -= held[0]
                budget.spent += s.actual_usd

    async def peek(self, tenant: str, meters: tuple[Meter, ...], now_ms: int) -> list[Reading]:
        day, month = periods(now_ms)
        return [self._read(tenant, m, now_ms, day, month) for m in meters]

    async def aclose(self) -> None:
        return None
