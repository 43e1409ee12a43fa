"""The shared state in Redis: the rules of ``state.py``, one atomic Lua script per request.

Keys (all of a tenant's share the hash tag ``{tenant}``):

    mr:{T}:<scope>:rq                 sorted set: admission times of the last minute (score ms)
    mr:{T}:<scope>:tk:<minute>        tokens counted in that minute (expires after 2 minutes)
    mr:{T}:<scope>:b:<period>         hash {spent, reserved} for a UTC day or month
    mr:{T}:<scope>:b:<period>:h / :x  the open reservations: amount, and expiry (ms) per id
    mr:{T}:s:<rid>                    "settled" marker (a day), so a retried settlement counts once

where <scope> is ``t`` (the tenant) or ``k:<key id>``. Every key expires (the minute window, the
period plus a margin).

**One round trip per request.** A request's settlement is queued in the process; the next
admission's ``EVALSHA`` carries the queued settlements (up to ``MAX_CARRIED``) and applies them
before it admits, in the same script. When no admission comes within ``settle_delay_s`` (50 ms:
traffic stopped), a timer sends them on their own; on shutdown they are flushed. So while Redis is
up a settlement is applied within ``settle_delay_s`` plus one round trip. A settlement whose call
failed (Redis away, or the reply lost) goes back to the queue and is sent again on recovery; its
marker makes the resend count once. One script may touch several tenants' keys: a single Redis
(or a primary), not Redis Cluster.

After a failure the backend does not try Redis again for ``retry_after_failure_s``, so an outage
costs requests one fast refusal (or admission, per the failure mode), not a timeout each; the first
call after it starts on fresh connections (pooled ones may be dead sockets to a restarted server).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from router.tenants.limits import Meter
from router.tenants.state import (
    DAY_TTL_S,
    MONTH_TTL_S,
    Admission,
    Reading,
    Settlement,
    StateError,
    Verdict,
    periods,
)

log = logging.getLogger("router.tenants")

_COMMON = """
local WINDOW = 60000
local function num(v) if v then return tonumber(v) end return 0 end
local function expire_reservations(bk, now)
  local gone = redis.call('ZRANGEBYSCORE', bk .. ':x', '-inf', now)
  for _, rid in ipairs(gone) do
    local amount = redis.call('HGET', bk .. ':h', rid)
    if amount then redis.call('HINCRBYFLOAT', bk, 'reserved', -tonumber(amount)) end
    redis.call('HDEL', bk .. ':h', rid)
    redis.call('ZREM', bk .. ':x', rid)
  end
end
local function read(p, rpm, tpm, daily, monthly, day, month, now)
  local r = {}
  local rq = p .. ':rq'
  redis.call('ZREMRANGEBYSCORE', rq, '-inf', now - WINDOW)
  r.requests = redis.call('ZCARD', rq)
  r.req_reset = 0
  if r.requests > 0 then
    local oldest = redis.call('ZRANGE', rq, 0, 0, 'WITHSCORES')
    r.req_reset = tonumber(oldest[2]) + WINDOW - now
  end
  local minute = math.floor(now / WINDOW)
  local frac = (now % WINDOW) / WINDOW
  r.tokens = num(redis.call('GET', p .. ':tk:' .. (minute - 1))) * (1 - frac)
    + num(redis.call('GET', p .. ':tk:' .. minute))
  r.tok_reset = WINDOW - now % WINDOW
  r.dspent, r.dres, r.mspent, r.mres = 0, 0, 0, 0
  r.left = nil
  if daily >= 0 then
    local bk = p .. ':b:' .. day
    expire_reservations(bk, now)
    local v = redis.call('HMGET', bk, 'spent', 'reserved')
    r.dspent, r.dres = num(v[1]), num(v[2])
    r.left = daily - r.dspent - r.dres
  end
  if monthly >= 0 then
    local bk = p .. ':b:' .. month
    expire_reservations(bk, now)
    local v = redis.call('HMGET', bk, 'spent', 'reserved')
    r.mspent, r.mres = num(v[1]), num(v[2])
    local left = monthly - r.mspent - r.mres
    if r.left == nil or left < r.left then r.left = left end
  end
  return r
end
local function f(x) return string.format('%.17g', x) end
local function pack(out, r)
  for _, v in ipairs({r.requests, r.req_reset, r.tokens, r.tok_reset, r.dspent, r.dres, r.mspent, r.mres}) do
    table.insert(out, f(v))
  end
end
"""

# Applies one queued settlement starting at ARGV[b]; returns where the next one starts.
# Layout: now, rid, actual, token delta, day, month, admitted day, admitted month, marker, n meters,
# then per meter: prefix, daily, monthly.
_SETTLE_ONE = """
local function settle_one(b)
  local now, rid, actual, delta = tonumber(ARGV[b]), ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local day, month, aday, amonth = ARGV[b + 4], ARGV[b + 5], ARGV[b + 6], ARGV[b + 7]
  local marker, n = ARGV[b + 8], tonumber(ARGV[b + 9])
  local after = b + 10 + n * 3
  if not redis.call('SET', marker, '1', 'NX', 'EX', 86400) then return after end  -- settled before
  local minute = math.floor(now / WINDOW)
  for i = 0, n - 1 do
    local m = b + 10 + i * 3
    local p, daily, monthly = ARGV[m], tonumber(ARGV[m + 1]), tonumber(ARGV[m + 2])
    if delta ~= 0 then
      local tk = p .. ':tk:' .. minute
      local v = redis.call('INCRBY', tk, delta)
      if v < 0 then redis.call('SET', tk, 0) end
      redis.call('PEXPIRE', tk, 2 * WINDOW + 1000)
    end
    for _, pr in ipairs({{daily, day, aday, DAY_TTL}, {monthly, month, amonth, MONTH_TTL}}) do
      if pr[1] >= 0 then
        local held_in = p .. ':b:' .. pr[3]
        local amount = redis.call('HGET', held_in .. ':h', rid)
        if amount then
          redis.call('HINCRBYFLOAT', held_in, 'reserved', -tonumber(amount))
          redis.call('HDEL', held_in .. ':h', rid)
          redis.call('ZREM', held_in .. ':x', rid)
        end
        local bk = p .. ':b:' .. pr[2]
        if actual > 0 then redis.call('HINCRBYFLOAT', bk, 'spent', actual) end
        redis.call('EXPIRE', bk, pr[4])
      end
    end
  end
  return after
end
local function settle_all()
  local b = 2
  for _ = 1, tonumber(ARGV[1]) do b = settle_one(b) end
  return b
end
""".replace("DAY_TTL", str(DAY_TTL_S)).replace("MONTH_TTL", str(MONTH_TTL_S))

# ARGV[1] = number of settlements carried, the settlements, then the admission: now, rid, want,
# need, tokens, ttl, day, month, its own settled-marker, n meters, then per meter: prefix, rpm,
# tpm, daily, monthly. The settlements are applied first, so the admission sees them.
ADMIT = _COMMON + _SETTLE_ONE + """
local a = settle_all()
local now, rid = tonumber(ARGV[a]), ARGV[a + 1]
local want, need, tokens, ttl = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]),
  tonumber(ARGV[a + 5])
local day, month, marker, n = ARGV[a + 6], ARGV[a + 7], ARGV[a + 8], tonumber(ARGV[a + 9])
local meters, reads = {}, {}
local left = nil
for i = 0, n - 1 do
  local b = a + 10 + i * 5
  local m = {p = ARGV[b], rpm = tonumber(ARGV[b + 1]), tpm = tonumber(ARGV[b + 2]),
             daily = tonumber(ARGV[b + 3]), monthly = tonumber(ARGV[b + 4])}
  meters[i + 1] = m
  reads[i + 1] = read(m.p, m.rpm, m.tpm, m.daily, m.monthly, day, month, now)
end
local function refuse(reason, retry)
  local out = {0, reason, '0', retry}
  for _, r in ipairs(reads) do pack(out, r) end
  return out
end
-- Settled already: the caller gave up on this admission (its reply was lost) and released it
-- before this ran (a stalled connection). Counting it now would hold money nobody settles.
if redis.call('EXISTS', marker) == 1 then return refuse('abandoned', 0) end
for i, m in ipairs(meters) do
  local r = reads[i]
  if m.rpm >= 0 and r.requests + 1 > m.rpm then return refuse('requests', math.max(r.req_reset, 1)) end
  if m.tpm >= 0 and r.tokens > 0 and r.tokens + tokens > m.tpm then
    return refuse('tokens', math.max(r.tok_reset, 1))
  end
  if r.left ~= nil and (left == nil or r.left < left) then left = r.left end
end
local granted = want
if left ~= nil and want > 0 then
  if left <= 0 or left < need then return refuse('budget', 0) end
  if left < want then granted = left end
end
local minute = math.floor(now / WINDOW)
for i, m in ipairs(meters) do
  local r = reads[i]
  redis.call('ZADD', m.p .. ':rq', now, rid)
  redis.call('PEXPIRE', m.p .. ':rq', WINDOW + 1000)
  r.requests = r.requests + 1
  if r.requests == 1 then r.req_reset = WINDOW end
  if tokens > 0 then
    redis.call('INCRBY', m.p .. ':tk:' .. minute, tokens)
    redis.call('PEXPIRE', m.p .. ':tk:' .. minute, 2 * WINDOW + 1000)
    r.tokens = r.tokens + tokens
  end
  if granted > 0 then
    for _, pr in ipairs({{m.daily, day, 'd', DAY_TTL}, {m.monthly, month, 'm', MONTH_TTL}}) do
      if pr[1] >= 0 then
        local bk = m.p .. ':b:' .. pr[2]
        redis.call('HINCRBYFLOAT', bk, 'reserved', granted)
        redis.call('HSET', bk .. ':h', rid, f(granted))
        redis.call('ZADD', bk .. ':x', now + ttl, rid)
        for _, k in ipairs({bk, bk .. ':h', bk .. ':x'}) do redis.call('EXPIRE', k, pr[4]) end
        if pr[3] == 'd' then r.dres = r.dres + granted else r.mres = r.mres + granted end
      end
    end
  end
end
local out = {1, 'ok', f(granted), 0}
for _, r in ipairs(reads) do pack(out, r) end
return out
""".replace("DAY_TTL", str(DAY_TTL_S)).replace("MONTH_TTL", str(MONTH_TTL_S))

# Settlements alone (when no admission came to carry them): ARGV[1] = count, then the settlements.
SETTLE = _COMMON + _SETTLE_ONE + """
settle_all()
return 1
""".replace("DAY_TTL", str(DAY_TTL_S)).replace("MONTH_TTL", str(MONTH_TTL_S))

PEEK = _COMMON + """
local now, day, month, n = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
local out = {}
for i = 0, n - 1 do
  local b = 5 + i * 5
  pack(out, read(ARGV[b], tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]),
                 tonumber(ARGV[b + 4]), day, month, now))
end
return out
"""

_FIELDS = 8
MAX_CARRIED = 64       # settlements one admission carries (bounds its script's run time)
FLUSH_CHUNK = 512      # settlements per EVALSHA when flushing without an admission
SETTLE_DELAY_S = 0.05  # the longest a settlement waits for an admission to carry it (Redis up)


def _prefix(tenant: str, meter: Meter) -> str:
    return f"mr:{{{tenant}}}:{meter.scope}"


def _marker(tenant: str, rid: str) -> str:
    return f"mr:{{{tenant}}}:s:{rid}"


def _opt(value: float | None) -> str:
    return "-1" if value is None else repr(float(value))


def _meter_args(tenant: str, meters: tuple[Meter, ...]) -> list[str]:
    out: list[str] = []
    for m in meters:
        out += [_prefix(tenant, m), _opt(m.rpm), _opt(m.tpm), _opt(m.daily_usd), _opt(m.monthly_usd)]
    return out


def _settle_args(s: Settlement, out: list[str]) -> None:
    day, month = periods(s.now_ms)
    aday, amonth = periods(s.admitted_ms)
    out += [str(s.now_ms), s.rid, repr(s.actual_usd), str(s.token_delta), day, month, aday, amonth,
            _marker(s.tenant, s.rid), str(len(s.meters))]
    for m in s.meters:
        out += [_prefix(s.tenant, m), _opt(m.daily_usd), _opt(m.monthly_usd)]


def _readings(meters: tuple[Meter, ...], flat: list[Any]) -> list[Reading]:
    out = []
    for i, m in enumerate(meters):
        v = [float(x) for x in flat[i * _FIELDS:(i + 1) * _FIELDS]]
        out.append(Reading(m, requests=int(v[0]), requests_reset_ms=int(v[1]), tokens=int(v[2]),
                           tokens_reset_ms=int(v[3]), daily_spent=v[4], daily_reserved=v[5],
                           monthly_spent=v[6], monthly_reserved=v[7]))
    return out


class RedisState:
    name = "redis"

    def __init__(self, url: str, *, password: str = "", timeout_s: float = 1.0, retry_after_failure_s: float = 1.0,
                 settle_delay_s: float = SETTLE_DELAY_S, max_pending: int = 100_000) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # No client-side retries: a script that ran but whose reply was lost must not run twice
        # (admission is not idempotent); the failure mode and the queue handle a failed call.
        self._client = aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                               health_check_interval=0, retry=Retry(NoBackoff(), 0),
                                               password=password or None)  # None: the URL's, if any
        self._admit = self._client.register_script(ADMIT)
        self._settle = self._client.register_script(SETTLE)
        self._peek = self._client.register_script(PEEK)
        self._retry_after_failure_s = retry_after_failure_s
        self._down_until = 0.0
        self._reconnect = False
        self.settle_delay_s = settle_delay_s
        self._pending: deque[tuple[float, Settlement]] = deque(maxlen=max_pending)  # (queued at, settlement)
        self._in_flight = 0  # settlements sent with a call not yet answered
        self._timer: asyncio.TimerHandle | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException) -> StateError:
        if self.available:
            log.warning("redis unreachable (%s: %s); trying again in %gs", type(exc).__name__, exc,
                        self._retry_after_failure_s)
        self._down_until = time.monotonic() + self._retry_after_failure_s
        self._reconnect = True
        return StateError(type(exc).__name__)

    async def _call(self, script: Any, args: list[str]) -> Any:
        import redis.exceptions as rexc

        if not self.available:
            raise StateError("redis is marked down")
        try:
            if self._reconnect:
                # The first call after a failure: drop the pooled connections, which may be dead
                # sockets to a server that restarted (each would fail once, and buy another back-off).
                self._reconnect = False
                await self._client.connection_pool.disconnect(inuse_connections=False)
            return await script(keys=[], args=args)
        except (TimeoutError, rexc.RedisError, OSError) as exc:
            raise self._failed(exc) from None

    # --- settlements: queued, carried by the next admission, or flushed after settle_delay_s ---------
    def _take(self, limit: int) -> list[tuple[float, Settlement]]:
        n = min(limit, len(self._pending))
        self._in_flight += n  # counted before they leave the queue: `pending`, read from another thread, never dips
        return [self._pending.popleft() for _ in range(n)]

    def _done(self, taken: list[tuple[float, Settlement]], *, sent: bool) -> None:
        self._in_flight -= len(taken)
        if not sent:  # back at the front, oldest first: sent again (idempotently) on recovery
            self._pending.extendleft(reversed(taken))
            self._arm()

    def settle_now(self, s: Settlement) -> None:
        """Queue a settlement: the next admission carries it, or the timer sends it."""
        self._pending.append((time.monotonic(), s))
        if self._timer is None and self._flusher is None and not self._closed:
            self._timer = asyncio.get_running_loop().call_later(self.settle_delay_s, self._due)

    async def settle(self, s: Settlement) -> None:
        self.settle_now(s)

    def _arm(self, at_least_s: float = 0.0) -> None:
        if self._timer is None and self._flusher is None and self._pending and not self._closed:
            self._timer = asyncio.get_running_loop().call_later(max(at_least_s, 0.0), self._due)

    def _due(self) -> None:
        """The timer: flush if the oldest queued settlement has waited ``settle_delay_s``."""
        self._timer = None
        if not self._pending:
            return
        wait = max(self._pending[0][0] + self.settle_delay_s, self._down_until) - time.monotonic()
        if wait > 0:
            self._arm(wait)
            return
        self._flusher = asyncio.get_running_loop().create_task(self._flush_due(), name="tenant-settle")

    async def _flush_due(self) -> None:
        pause = 0.0
        try:
            await self.flush()
        except Exception:  # never let the queue stall on a bug
            log.exception("tenant settlement flush failed")
            pause = 1.0
        finally:
            self._flusher = None
        self._arm(pause)

    async def flush(self) -> bool:
        """Send every queued settlement now (one EVALSHA per chunk); False, kept queued, if Redis failed."""
        while self._pending:
            if not self.available:
                return False
            taken = self._take(FLUSH_CHUNK)
            args = [str(len(taken))]
            for _, s in taken:
                _settle_args(s, args)
            sent = False
            try:
                await self._call(self._settle, args)
                sent = True
            except StateError:
                return False
            finally:
                self._done(taken, sent=sent)
        return True

    @property
    def pending(self) -> int:
        """Settlements not yet known to be applied (queued, or sent and not yet answered)."""
        return len(self._pending) + self._in_flight

    # --- admission: one EVALSHA, carrying the queued settlements ---------------------------------
    async def admit(self, a: Admission) -> Verdict:
        if not self.available:
            raise StateError("redis is marked down")
        taken = self._take(MAX_CARRIED)
        args = [str(len(taken))]
        for _, s in taken:
            _settle_args(s, args)
        day, month = periods(a.now_ms)
        args += [str(a.now_ms), a.rid, repr(a.reserve_usd), repr(a.need_usd), str(a.tokens), str(a.ttl_ms),
                 day, month, _marker(a.tenant, a.rid), str(len(a.meters)), *_meter_args(a.tenant, a.meters)]
        sent = False
        try:
            res = await self._call(self._admit, args)
            sent = True
        finally:  # failed or cancelled: the carried settlements go back to the queue
            self._done(taken, sent=sent)
        ok, reason = int(res[0]), res[1].decode() if isinstance(res[1], bytes) else str(res[1])
        if reason == "abandoned":  # only a replayed admission sees this; nobody waits for its answer
            raise StateError("admission already settled")
        readings = _readings(a.meters, res[4:])
        if ok:
            return Verdict(True, granted_usd=float(res[2]), readings=readings)
        return Verdict(False, reason, retry_after_ms=int(res[3]), readings=readings)

    async def peek(self, tenant: str, meters: tuple[Meter, ...], now_ms: int) -> list[Reading]:
        day, month = periods(now_ms)
        res = await self._call(self._peek, [str(now_ms), day, month, str(len(meters)),
                                            *_meter_args(tenant, meters)])
        return _readings(meters, res)

    async def aclose(self) -> None:
        """Flush on shutdown (bounded), then close the connections."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        with contextlib.suppress(Exception):
            if self._flusher is not None:
                await asyncio.wait_for(asyncio.shield(self._flusher), timeout=2.0)
            await asyncio.wait_for(self.flush(), timeout=2.0)
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        with contextlib.suppress(Exception):
            await self._client.aclose()
