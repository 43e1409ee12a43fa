"""The shared state in Redis: the rules of ``state.py``, each admission one atomic Lua script.

Keys (all of a tenant's share the hash tag ``{tenant}``, so a cluster keeps them on one slot):

    mr:{T}:<scope>:rq                 sorted set: admission times of the last minute (score ms)
    mr:{T}:<scope>:tk:<minute>        tokens counted in that minute (expires after 2 minutes)
    mr:{T}:<scope>:b:<period>         hash {spent, reserved} for a UTC day or month
    mr:{T}:<scope>:b:<period>:h / :x  the open reservations: amount, and expiry (ms) per id
    mr:{T}:s:<rid>                    "settled" marker (a day), so a retried settlement counts once

where <scope> is ``t`` (the tenant) or ``k:<key id>``. Every key expires (the minute window, the
period plus a margin). One admission = one ``EVALSHA`` (one round trip). Settlements are queued and
sent by a background task in one pipeline per batch: under load many requests share a round trip,
and a settlement that fails (Redis away) stays queued and is retried, idempotently, on recovery.
After a failure the backend does not try Redis again for ``retry_after_failure_s``, so an outage
costs requests one fast refusal (or admission, per the failure mode), not a timeout each.
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

ADMIT = _COMMON + """
local now, rid = tonumber(ARGV[1]), ARGV[2]
local want, need, tokens, ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local day, month, n = ARGV[7], ARGV[8], tonumber(ARGV[9])
local meters, reads = {}, {}
local left = nil
for i = 0, n - 1 do
  local b = 10 + i * 5
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

SETTLE = _COMMON + """
local now, rid, actual, delta = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local day, month, aday, amonth, marker, n = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10])
if not redis.call('SET', marker, '1', 'NX', 'EX', 86400) then return 0 end
local minute = math.floor(now / WINDOW)
for i = 0, n - 1 do
  local b = 11 + i * 3
  local p, daily, monthly = ARGV[b], tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
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


def _prefix(tenant: str, meter: Meter) -> str:
    return f"mr:{{{tenant}}}:{meter.scope}"


def _opt(value: float | None) -> str:
    return "-1" if value is None else repr(float(value))


def _meter_args(tenant: str, meters: tuple[Meter, ...]) -> list[str]:
    out: list[str] = []
    for m in meters:
        out += [_prefix(tenant, m), _opt(m.rpm), _opt(m.tpm), _opt(m.daily_usd), _opt(m.monthly_usd)]
    return out


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
                 max_pending: int = 100_000) -> None:
        import redis.asyncio as aioredis

        self._client = aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                               health_check_interval=0, retry_on_timeout=False,
                                               password=password or None)  # None: the URL's, if any
        self._admit = self._client.register_script(ADMIT)
        self._settle = self._client.register_script(SETTLE)
        self._peek = self._client.register_script(PEEK)
        self._retry_after_failure_s = retry_after_failure_s
        self._down_until = 0.0
        self._pending: deque[Settlement] = deque(maxlen=max_pending)
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self.round_trips = 0  # admissions + settlement batches + peeks sent (for the benchmark)

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException) -> StateError:
        if self.available:
            log.warning("redis unreachable (%s: %s); trying again in %gs", type(exc).__name__, exc,
                        self._retry_after_failure_s)
        self._down_until = time.monotonic() + self._retry_after_failure_s
        return StateError(type(exc).__name__)

    async def _call(self, script: Any, args: list[str]) -> Any:
        import redis.exceptions as rexc

        if not self.available:
            raise StateError("redis is marked down")
        self.round_trips += 1
        try:
            return await script(keys=[], args=args)
        except (TimeoutError, rexc.RedisError, OSError) as exc:
            raise self._failed(exc) from None

    async def admit(self, a: Admission) -> Verdict:
        day, month = periods(a.now_ms)
        args = [str(a.now_ms), a.rid, repr(a.reserve_usd), repr(a.need_usd), str(a.tokens), str(a.ttl_ms),
                day, month, str(len(a.meters)), *_meter_args(a.tenant, a.meters)]
        res = await self._call(self._admit, args)
        ok, reason = int(res[0]), res[1].decode() if isinstance(res[1], bytes) else str(res[1])
        readings = _readings(a.meters, res[4:])
        if ok:
            return Verdict(True, granted_usd=float(res[2]), readings=readings)
        return Verdict(False, reason, retry_after_ms=int(res[3]), readings=readings)

    async def settle(self, s: Settlement) -> None:
        """Queued; the flusher sends it (with whatever else is waiting) in one pipeline."""
        self._pending.append(s)
        self._wake.set()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever(), name="tenant-settle")

    def _settle_args(self, s: Settlement) -> list[str]:
        day, month = periods(s.now_ms)
        aday, amonth = periods(s.admitted_ms)
        args = [str(s.now_ms), s.rid, repr(s.actual_usd), str(s.token_delta), day, month, aday, amonth,
                f"mr:{{{s.tenant}}}:s:{s.rid}", str(len(s.meters))]
        for m in s.meters:
            args += [_prefix(s.tenant, m), _opt(m.daily_usd), _opt(m.monthly_usd)]
        return args

    async def flush(self) -> bool:
        """Send every queued settlement in one pipeline; False (and kept queued) if Redis failed."""
        async with self._flush_lock:
            return await self._flush_locked()

    async def _flush_locked(self) -> bool:
        import redis.exceptions as rexc

        if not self._pending:
            return True
        if not self.available:
            return False
        batch = list(self._pending)
        self.round_trips += 1
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for s in batch:
                    await self._settle(keys=[], args=self._settle_args(s), client=pipe)
                await pipe.execute()
        except (TimeoutError, rexc.RedisError, OSError) as exc:
            self._failed(exc)
            return False  # kept: the markers make a partly applied batch safe to resend
        for _ in batch:  # settle() only appends, and flushes are serialised: these are the batch
            self._pending.popleft()
        return True

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                if not await self.flush():
                    await asyncio.sleep(max(0.05, self._down_until - time.monotonic()))
                    self._wake.set()
            except Exception:  # never let the flusher die
                log.exception("tenant settlement flush failed")
                await asyncio.sleep(1.0)
                self._wake.set()

    async def peek(self, tenant: str, meters: tuple[Meter, ...], now_ms: int) -> list[Reading]:
        day, month = periods(now_ms)
        res = await self._call(self._peek, [str(now_ms), day, month, str(len(meters)),
                                            *_meter_args(tenant, meters)])
        return _readings(meters, res)

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), timeout=2.0)
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        with contextlib.suppress(Exception):
            await self._client.aclose()
