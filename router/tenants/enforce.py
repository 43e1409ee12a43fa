"""Admission against the shared state, and settlement: the small API the request path calls.

    reservation = await enforcer.admit(limits, reserve_usd=..., need_usd=..., tokens=..., ttl_ms=...)
    ...                                   # the request runs, spending at most reservation.granted_usd
    reservation.settle(actual_usd, actual_tokens)

Refusals are OpenAI's: 429 ``rate_limit_exceeded`` with ``retry-after`` (requests or tokens per
minute), 429 ``insufficient_quota`` (budget spent). Every answer of a rate-limited tenant carries
``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``.

When the shared state is unreachable, ``redis_failure`` decides per kind: ``closed`` refuses (503
``service_unavailable`` + ``retry-after``), ``open`` admits without counting. Defaults: closed for
budgets (money is not handed out blind), open for rate limits (an outage of the counter store
should not become an outage of the gateway). A settlement made during an outage is kept and sent on
recovery; it carries its reservation id, so it is counted exactly once.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from collections.abc import Callable
from typing import Literal

from router import errors
from router.engine.decide import Decision, Limits
from router.tenants.limits import KeyLimits, Meter
from router.tenants.metrics import TenantMetrics
from router.tenants.state import Admission, Reading, Settlement, SharedState, StateError, Verdict

log = logging.getLogger("router.tenants")
FailureMode = Literal["open", "closed"]


def _seconds(value: float) -> str:
    return f"{value:g}s"


# OpenAI's ``x-ratelimit-reset-*`` shape (``20ms``, ``1.5s``, ``6m0s``), rendered once at import: the
# milliseconds below a second, hundredths of a second below 10 s, tenths below a minute — each
# rounded *up*, so a client that waits that long finds the room the header promises.
_MS_TEXT = tuple(f"{ms}ms" for ms in range(1000))
_CS_TEXT = tuple(_seconds(cs / 100) for cs in range(1001))   # index: hundredths (100..1000)
_DS_TEXT = tuple(_seconds(ds / 10) for ds in range(601))     # index: tenths (100..600)


def reset_text(ms: int) -> str:
    """A duration as OpenAI writes ``x-ratelimit-reset-*``: ``20ms``, ``1.5s``, ``6m0s``."""
    if ms < 1000:
        return _MS_TEXT[ms] if ms > 0 else "0ms"
    if ms <= 10_000:
        return _CS_TEXT[-(-ms // 10)]
    if ms <= 60_000:
        return _DS_TEXT[-(-ms // 100)]
    seconds = -(-ms // 1000)
    return f"{seconds // 60}m{seconds % 60}s"


def rate_headers(readings: list[Reading]) -> dict[str, str]:
    """The headers for the tightest requests meter and the tightest tokens meter."""
    req: Reading | None = None
    tok: Reading | None = None
    req_left = tok_left = 0
    for r in readings:  # the first meter with the least left, of each kind
        m = r.meter
        if m.rpm is not None and (req is None or m.rpm - r.requests < req_left):
            req, req_left = r, m.rpm - r.requests
        if m.tpm is not None and (tok is None or m.tpm - r.tokens < tok_left):
            tok, tok_left = r, m.tpm - r.tokens
    # One dict literal per case: only the remaining counts and reset times are formatted here.
    if req is not None and tok is not None:
        return {"x-ratelimit-limit-requests": req.meter.rpm_text,
                "x-ratelimit-remaining-requests": str(req_left) if req_left > 0 else "0",
                "x-ratelimit-reset-requests": reset_text(req.requests_reset_ms),
                "x-ratelimit-limit-tokens": tok.meter.tpm_text,
                "x-ratelimit-remaining-tokens": str(tok_left) if tok_left > 0 else "0",
                "x-ratelimit-reset-tokens": reset_text(tok.tokens_reset_ms)}
    if req is not None:
        return {"x-ratelimit-limit-requests": req.meter.rpm_text,
                "x-ratelimit-remaining-requests": str(req_left) if req_left > 0 else "0",
                "x-ratelimit-reset-requests": reset_text(req.requests_reset_ms)}
    if tok is not None:
        return {"x-ratelimit-limit-tokens": tok.meter.tpm_text,
                "x-ratelimit-remaining-tokens": str(tok_left) if tok_left > 0 else "0",
                "x-ratelimit-reset-tokens": reset_text(tok.tokens_reset_ms)}
    return {}


class Reservation:
    """One admitted request's claim on its tenant's counters; ``settle`` once, when it is over.

    A plain slotted class (one is made per request; a dataclass with a default factory costs more)."""

    __slots__ = ("_settle", "admitted_ms", "counted", "granted_usd", "headers", "limits", "rid", "settled",
                 "tokens")

    def __init__(self, limits: KeyLimits, granted_usd: float | None, tokens: int,
                 headers: dict[str, str] | None = None, rid: str = "", admitted_ms: int = 0, counted: bool = False,
                 _settle: Callable[[Reservation, float, int], None] | None = None) -> None:
        self.limits = limits
        self.granted_usd = granted_usd  # None: no budget applies (spend is not capped here)
        self.tokens = tokens
        self.headers = {} if headers is None else headers
        self.rid = rid
        self.admitted_ms = admitted_ms
        self.counted = counted          # False: nothing to settle (no meters)
        self._settle = _settle
        self.settled = False

    def settle(self, actual_usd: float, actual_tokens: int) -> None:
        if self.settled:
            return
        self.settled = True
        if self._settle is not None:
            self._settle(self, actual_usd, actual_tokens)


class Enforcer:
    def __init__(self, state: SharedState, metrics: TenantMetrics, *, budgets_on_failure: FailureMode = "closed",
                 rate_limits_on_failure: FailureMode = "open", clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.metrics = metrics
        self.budgets_on_failure = budgets_on_failure
        self.rate_limits_on_failure = rate_limits_on_failure
        self._clock = clock
        # Reservation ids: a random per-process prefix and a counter (unique across replicas, and
        # cheaper than random bytes per request).
        self._rid_prefix = os.urandom(8).hex() + "-"
        self._rids = itertools.count()
        self._admit_now: Callable[[Admission], Verdict] | None = getattr(state, "admit_now", None)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def admit(self, limits: KeyLimits, *, reserve_usd: float, need_usd: float, tokens: int,
                    ttl_ms: int) -> Reservation:
        meters = limits.meters
        if not meters:
            return Reservation(limits, None, tokens)
        budgeted = limits.budgeted
        admission = Admission(limits.tenant, meters, f"{self._rid_prefix}{next(self._rids):x}",
                              reserve_usd if budgeted else 0.0,
                              need_usd, tokens, int(self._clock() * 1000), ttl_ms)
        if self._admit_now is not None:  # in-process: no await, it cannot fail
            return self._verdict(limits, admission, self._admit_now(admission), budgeted)
        try:
            verdict = await self.state.admit(admission)
        except StateError:
            return self._state_failed(limits, admission, budgeted)
        return self._verdict(limits, admission, verdict, budgeted)

    def _verdict(self, limits: KeyLimits, a: Admission, verdict: Verdict, budgeted: bool) -> Reservation:
        headers = rate_headers(verdict.readings)
        self.metrics.readings(limits.tenant, verdict.readings)
        if not verdict.ok:
            if verdict.reason == "budget":
                self.metrics.rejected(limits.tenant, "budget")
                raise errors.QuotaExceeded(
                    "You exceeded your current quota: this key's spend budget is used up for the period.",
                    headers=headers)
            self.metrics.rejected(limits.tenant, f"rate_limit_{verdict.reason}")
            what = "requests" if verdict.reason == "requests" else "tokens"
            exc = errors.RateLimited(f"Rate limit reached for {what} per minute on this key's tenant; "
                                     f"retry after {reset_text(verdict.retry_after_ms)}.",
                                     retry_after_s=max(1.0, verdict.retry_after_ms / 1000))
            exc.headers.update(headers)
            raise exc
        return Reservation(limits, verdict.granted_usd if budgeted else None, a.tokens, headers, a.rid,
                           a.now_ms, True, self._settle)

    def _state_failed(self, limits: KeyLimits, a: Admission, budgeted: bool) -> Reservation:
        rated = limits.rated
        closed = (budgeted and a.reserve_usd > 0 and self.budgets_on_failure == "closed") or \
                 (rated and self.rate_limits_on_failure == "closed")
        self.metrics.state_failures.inc()
        if closed:
            self.metrics.rejected(limits.tenant, "state_unavailable")
            # The admission may have run before the connection broke: a zero settlement under the
            # same id (queued until Redis is back) returns any reservation it made.
            self._settle(Reservation(limits, None, a.tokens, rid=a.rid, admitted_ms=a.now_ms, counted=True), 0.0, 0)
            raise errors.Unavailable("The gateway cannot check this key's limits right now; retry shortly.",
                                     headers={"retry-after": "1"}, code="limits_unavailable")
        # Admitted uncounted; its spend is still settled (queued until the state is back).
        return Reservation(limits, a.reserve_usd if budgeted else None, a.tokens, {}, a.rid, a.now_ms, True,
                           self._settle)

    def _settle(self, r: Reservation, actual_usd: float, actual_tokens: int) -> None:
        if not r.counted:
            return
        settlement = Settlement(r.limits.tenant, r.limits.meters, r.rid, actual_usd, actual_tokens - r.tokens,
                                self._now_ms(), r.admitted_ms)
        self.state.settle_now(settlement)

    async def peek(self, limits: KeyLimits) -> list[Reading] | None:
        if not limits.meters:
            return []
        try:
            return await self.state.peek(limits.tenant, limits.meters, self._now_ms())
        except StateError:
            return None


def meters_summary(readings: list[Reading]) -> list[dict[str, object]]:
    """What ``GET /v1/router/tenants/me`` shows per meter (limits and what is left)."""
    out: list[dict[str, object]] = []
    for r in readings:
        m: Meter = r.meter
        item: dict[str, object] = {"scope": "tenant" if m.scope == "t" else "key"}
        if m.rpm is not None:
            item["requests_per_minute"] = {"limit": m.rpm, "used": r.requests,
                                           "remaining": max(0, m.rpm - r.requests)}
        if m.tpm is not None:
            item["tokens_per_minute"] = {"limit": m.tpm, "used": r.tokens, "remaining": max(0, m.tpm - r.tokens)}
        if m.daily_usd is not None:
            item["daily_budget_usd"] = {"limit": m.daily_usd, "spent": round(r.daily_spent, 8),
                                        "reserved": round(r.daily_reserved, 8),
                                        "remaining": round(m.daily_usd - r.daily_spent - r.daily_reserved, 8)}
        if m.monthly_usd is not None:
            item["monthly_budget_usd"] = {"limit": m.monthly_usd, "spent": round(r.monthly_spent, 8),
                                          "reserved": round(r.monthly_reserved, 8),
                                          "remaining": round(m.monthly_usd - r.monthly_spent - r.monthly_reserved,
                                                             8)}
        out.append(item)
    return out


class Admitted:
    """An admitted request's side of its tenant: the reservation, settled by ``finish`` (called by
    ``Accounting.finished``), and what the cascade's label call may spend of it."""

    __slots__ = ("answer_reserved", "cascade_charged_usd", "cascade_usd", "exempt_routes", "metrics",
                 "reservation")

    def __init__(self, reservation: Reservation, metrics: TenantMetrics,
                 exempt_routes: frozenset[str] = frozenset(), *, cascade_usd: float = math.inf,
                 answer_reserved: bool = True) -> None:
        self.reservation = reservation
        self.metrics = metrics
        self.exempt_routes = exempt_routes  # self-hosted routes this tenant's budget does not pay for
        self.cascade_usd = cascade_usd      # the most a cascade call may cost the budget (inf: no budget)
        self.answer_reserved = answer_reserved  # False: the budget reserved nothing for the answer
        self.cascade_charged_usd = 0.0

    @property
    def headers(self) -> dict[str, str]:
        return self.reservation.headers

    # --- the cascade's label call (router.pipeline.cascade) ---------------------------------------
    def allows_cascade(self, route: str, estimate_usd: float) -> bool:
        """Whether the admission covers a label call on ``route`` estimated at ``estimate_usd``."""
        return route in self.exempt_routes or estimate_usd <= self.cascade_usd

    def charge_cascade(self, route: str, cost_usd: float) -> None:
        """The label call's cost, settled with the request's (unless its route is exempt)."""
        if route not in self.exempt_routes:
            self.cascade_charged_usd += cost_usd

    def refit(self, decision: Decision, money_usd: float) -> bool:
        """A decision made again under the cascade's label, held to what this admission reserved:
        its money capped at ``money_usd`` (the first decision's, the grant already applied); False
        when it needs budget the admission did not reserve (only exempt routes were)."""
        if not self.answer_reserved and any(c.route not in self.exempt_routes for c in decision.chain):
            return False
        if money_usd < decision.limits.max_cost_usd:
            decision.limits = Limits(max_cost_usd=money_usd, latency_budget_ms=decision.limits.latency_budget_ms)
        return True

    def finish(self, route: str, status: str, cost_usd: float, tokens: int) -> None:
        charged = (0.0 if route in self.exempt_routes else cost_usd) + self.cascade_charged_usd
        reservation = self.reservation
        self.metrics.finished(reservation.limits.tenant, status, charged)
        reservation.settle(charged, tokens)
