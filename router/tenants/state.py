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
_SETTLED_MARKERS = 10_000  # in-process: a retried settlement comes back at once (no I/O), not 10k requests later


_PERIODS: dict[int, tuple[str, str]] = {}


# The latest day asked for and its periods, as one tuple (one read, one write: safe across threads).
_today: tuple[int, tuple[str, str]] = (-1, ("", ""))


def periods(now_ms: int) -> tuple[str, str]:
    """The UTC day and month a moment belongs to (budget periods); one computation per day."""
    global _today
    day_number = now_ms // 86_400_000
    today = _today
    if day_number == today[0]:  # nearly every call: no dictionary look-up
        return today[1]
    hit = _PERIODS.get(day_number)
    if hit is None:
        t = time.gmtime(day_number * 86_400)
        if len(_PERIODS) > 64:
            _PERIODS.clear()
        hit = _PERIODS[day_number] = (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}",
                                      f"{t.tm_year:04d}-{t.tm_mon:02d}")
    if day_number > today[0]:
        _today = (day_number, hit)
    return hit


# Plain (not frozen) slotted classes: built on every request, and a frozen dataclass's __init__
# costs a call per field. Nothing mutates them.
@dataclass(slots=True)
class Admission:
    tenant: str
    meters: tuple[Meter, ...]
    rid: str               # reservation id (random per request)
    reserve_usd: float     # the worst case the request may spend
    need_usd: float        # the least it can run on (its route's estimate): below that, no grant
    tokens: int            # estimated tokens, counted now and corrected at settlement
    now_ms: int
    ttl_ms: int            # an unsettled reservation is released after this


@dataclass(slots=True)
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


class _Budget:
    """One meter's spend in one period, and the reservations held against it."""

    __slots__ = ("held", "next_expiry", "reserved", "spent")

    def __init__(self) -> None:
        self.spent = 0.0
        self.reserved = 0.0
        self.held: dict[str, tuple[float, int]] = {}  # rid -> (amount, expiry ms)
        self.next_expiry = 2**62  # no reservation expires before this (skip the scan until then)

    def hold(self, rid: str, amount: float, expiry: int) -> None:
        self.reserved += amount
        self.held[rid] = (amount, expiry)
        if expiry < self.next_expiry:
            self.next_expiry = expiry

    def release(self, rid: str) -> None:
        held = self.held.pop(rid, None)
        if held is not None:
            self.reserved -= held[0]

    def expire(self, now_ms: int) -> None:
        for rid in [r for r, (_, exp) in self.held.items() if exp <= now_ms]:
            self.reserved -= self.held.pop(rid)[0]
        self.next_expiry = min((exp for _, exp in self.held.values()), default=2**62)


class _Counters:
    """Everything one meter (a tenant's, or a key's) counts: one look-up per meter per request."""

    __slots__ = ("budgets", "minute", "times", "tokens_now", "tokens_prev")

    def __init__(self) -> None:
        self.times: deque[int] = deque()   # admission times (ms) of the last minute, oldest first
        self.minute = 0                    # token buckets: this minute's count and the previous one's
        self.tokens_now = 0
        self.tokens_prev = 0
        self.budgets: dict[str, _Budget] = {}

    def roll(self, minute: int) -> None:
        if minute > self.minute:
            self.tokens_prev = self.tokens_now if minute == self.minute + 1 else 0
            self.tokens_now = 0
            self.minute = minute

    def add_tokens(self, minute: int, delta: int) -> None:
        self.roll(minute)
        if minute == self.minute:
            self.tokens_now = max(0, self.tokens_now + delta)
        elif minute == self.minute - 1:
            self.tokens_prev = max(0, self.tokens_prev + delta)

    def budget(self, period: str, now_ms: int) -> _Budget:
        budget = self.budgets.get(period)
        if budget is None:
            budget = self.budgets[period] = _Budget()
        elif now_ms >= budget.next_expiry:
            budget.expire(now_ms)
        return budget


_NO_BUDGET = _Budget()  # read as zeros for a meter without that budget (never written)


class MemoryState:
    """The rules above for one process (the event loop serialises every call)."""

    name = "memory"

    def __init__(self) -> None:
        self._counters: dict[tuple[str, str], _Counters] = {}
        # Settled reservation ids (idempotence), in two generations: when the newer one is full it
        # becomes the older one and the oldest markers go — between N and 2N markers, no scan.
        self._settled_new: set[str] = set()
        self._settled_old: set[str] = set()

    def _of(self, tenant: str, scope: str) -> _Counters:
        counters = self._counters.get((tenant, scope))
        if counters is None:
            counters = self._counters[(tenant, scope)] = _Counters()
        return counters

    def _read(self, meter: Meter, c: _Counters, now_ms: int, day: str, month: str) -> Reading:
        times = c.times
        cutoff = now_ms - WINDOW_MS
        while times and times[0] <= cutoff:
            times.popleft()
        minute, into_minute = divmod(now_ms, WINDOW_MS)
        if minute > c.minute:
            c.roll(minute)
        daily = c.budget(day, now_ms) if meter.daily_usd is not None else _NO_BUDGET
        monthly = c.budget(month, now_ms) if meter.monthly_usd is not None else _NO_BUDGET
        return Reading(meter, len(times), (times[0] + WINDOW_MS - now_ms) if times else 0,
                       int(c.tokens_prev * (1 - into_minute / WINDOW_MS) + c.tokens_now), WINDOW_MS - into_minute,
                       daily.spent, daily.reserved, monthly.spent, monthly.reserved)

    async def admit(self, a: Admission) -> Verdict:
        return self.admit_now(a)

    def admit_now(self, a: Admission) -> Verdict:
        now = a.now_ms
        day, month = periods(now)
        counters = []
        readings = []
        left: float | None = None
        refusal: Verdict | None = None
        for m in a.meters:  # read every meter (a refusal shows them all), then decide
            c = self._of(a.tenant, m.scope)
            r = self._read(m, c, now, day, month)
            counters.append(c)
            readings.append(r)
            if refusal is not None:
                continue
            if m.rpm is not None and r.requests + 1 > m.rpm:
                refusal = Verdict(False, "requests", retry_after_ms=max(r.requests_reset_ms, 1))
            elif m.tpm is not None and r.tokens > 0 and r.tokens + a.tokens > m.tpm:
                refusal = Verdict(False, "tokens", retry_after_ms=max(r.tokens_reset_ms, 1))
            else:  # the least left of every budget of every meter (inlined: once per request)
                if m.daily_usd is not None:
                    r_left = m.daily_usd - r.daily_spent - r.daily_reserved
                    if left is None or r_left < left:
                        left = r_left
                if m.monthly_usd is not None:
                    r_left = m.monthly_usd - r.monthly_spent - r.monthly_reserved
                    if left is None or r_left < left:
                        left = r_left
        if refusal is not None:
            refusal.readings = readings
            return refusal
        granted = a.reserve_usd
        if left is not None and granted > 0:
            if left <= 0 or left < a.need_usd:
                return Verdict(False, "budget", readings=readings)
            if left < granted:
                granted = left
        expiry = now + a.ttl_ms
        tokens, rid = a.tokens, a.rid
        for r, c in zip(readings, counters, strict=True):
            m = r.meter
            c.times.append(now)
            r.requests += 1
            if r.requests == 1:
                r.requests_reset_ms = WINDOW_MS
            c.tokens_now += tokens  # _read rolled the buckets to this minute
            r.tokens += tokens
            if granted > 0:
                if m.daily_usd is not None:
                    c.budgets[day].hold(rid, granted, expiry)
                    r.daily_reserved += granted
                if m.monthly_usd is not None:
                    c.budgets[month].hold(rid, granted, expiry)
                    r.monthly_reserved += granted
        return Verdict(True, None, granted, 0, readings)

    async def settle(self, s: Settlement) -> None:
        self.settle_now(s)

    def settle_now(self, s: Settlement) -> None:
        rid = s.rid
        newer = self._settled_new
        if rid in newer or rid in self._settled_old:
            return
        newer.add(rid)
        if len(newer) >= _SETTLED_MARKERS:
            self._settled_old, self._settled_new = newer, set()
        now = s.now_ms
        day, month = periods(now)
        admitted_day, admitted_month = periods(s.admitted_ms)
        actual, delta = s.actual_usd, s.token_delta
        for m in s.meters:
            c = self._of(s.tenant, m.scope)
            if delta:
                c.add_tokens(now // WINDOW_MS, delta)
            if m.daily_usd is not None:
                budget = c.budget(day, now)
                (budget if admitted_day == day else c.budget(admitted_day, now)).release(rid)
                budget.spent += actual
            if m.monthly_usd is not None:
                budget = c.budget(month, now)
                (budget if admitted_month == month else c.budget(admitted_month, now)).release(rid)
                budget.spent += actual

    async def peek(self, tenant: str, meters: tuple[Meter, ...], now_ms: int) -> list[Reading]:
        day, month = periods(now_ms)
        return [self._read(m, self._of(tenant, m.scope), now_ms, day, month) for m in meters]

    async def aclose(self) -> None:
        return None
