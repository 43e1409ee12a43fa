"""The shared-state rules, run against both backends: in-process, and a real redis-server.

A hand-driven clock (``now_ms``) makes windows and expiries exact; no sleeps.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from router.tenants.limits import Meter
from router.tenants.redis_state import RedisState
from router.tenants.state import Admission, MemoryState, Settlement, SharedState, StateError, periods
from tests.support.redis_server import RedisServer
from tests.support.redis_wire import RoundTrips, count_round_trips

T0 = 1_796_000_000_000  # a fixed instant (ms) mid-month


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[SharedState]:
    if request.param == "memory":
        yield MemoryState()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    backend = RedisState(server.url)
    await backend._client.flushdb()
    yield backend
    await backend.aclose()


def admission(meters: tuple[Meter, ...], rid: str, now: int, *, reserve: float = 0.0, need: float = 0.0,
              tokens: int = 0, ttl_ms: int = 600_000, tenant: str = "team") -> Admission:
    return Admission(tenant, meters, rid, reserve, need, tokens, now, ttl_ms)


async def test_requests_per_minute_is_an_exact_sliding_window(state: SharedState) -> None:
    meters = (Meter("t", rpm=3),)
    for i in range(3):
        assert (await state.admit(admission(meters, f"r{i}", T0 + i * 10_000))).ok
    refused = await state.admit(admission(meters, "r3", T0 + 30_000))
    assert not refused.ok and refused.reason == "requests"
    assert refused.retry_after_ms == 30_000  # the first one leaves the window at T0 + 60 s
    assert not (await state.admit(admission(meters, "r4", T0 + 59_999))).ok
    later = await state.admit(admission(meters, "r5", T0 + 60_000))
    assert later.ok and later.readings[0].requests == 3


async def test_a_refused_request_counts_nowhere(state: SharedState) -> None:
    tenant_meter, key_meter = Meter("t", rpm=10), Meter("k:key_0000000000000001", rpm=1)
    assert (await state.admit(admission((tenant_meter, key_meter), "a", T0))).ok
    refused = await state.admit(admission((tenant_meter, key_meter), "b", T0 + 1))
    assert not refused.ok and refused.reason == "requests"
    readings = await state.peek("team", (tenant_meter, key_meter), T0 + 2)
    assert [r.requests for r in readings] == [1, 1]


async def test_tokens_per_minute_counts_the_estimate_then_the_actual(state: SharedState) -> None:
    meters = (Meter("t", tpm=1000),)
    assert (await state.admit(admission(meters, "a", T0, tokens=600))).ok
    assert not (await state.admit(admission(meters, "b", T0 + 1, tokens=600))).ok  # 600 + 600 > 1000
    await state.settle(Settlement("team", meters, "a", 0.0, -500, T0 + 2, T0))  # it used only 100
    if isinstance(state, RedisState):
        assert await state.flush()
    assert (await state.admit(admission(meters, "c", T0 + 3, tokens=600))).ok


async def test_budget_reservations_stop_concurrent_overspend(state: SharedState) -> None:
    meters = (Meter("t", monthly_usd=1.0),)
    a = await state.admit(admission(meters, "a", T0, reserve=0.4, need=0.01))
    b = await state.admit(admission(meters, "b", T0 + 1, reserve=0.4, need=0.01))
    c = await state.admit(admission(meters, "c", T0 + 2, reserve=0.4, need=0.01))
    assert a.ok and b.ok and c.ok
    assert c.granted_usd == pytest.approx(0.2)  # what was left, and it covers the route's estimate
    refused = await state.admit(admission(meters, "d", T0 + 3, reserve=0.4, need=0.01))
    assert not refused.ok and refused.reason == "budget"
    # Settling returns the unused part of each reservation.
    await state.settle(Settlement("team", meters, "a", 0.05, 0, T0 + 4, T0))
    await state.settle(Settlement("team", meters, "a", 0.05, 0, T0 + 5, T0))  # a retry: counted once
    if isinstance(state, RedisState):
        assert await state.flush()
    reading = (await state.peek("team", meters, T0 + 6))[0]
    assert reading.monthly_spent == pytest.approx(0.05)
    assert reading.monthly_reserved == pytest.approx(0.6)
    assert reading.budget_left() == pytest.approx(0.35)


async def test_a_reservation_below_the_routes_estimate_is_refused(state: SharedState) -> None:
    meters = (Meter("t", daily_usd=0.1),)
    assert (await state.admit(admission(meters, "a", T0, reserve=0.08, need=0.01))).ok
    refused = await state.admit(admission(meters, "b", T0 + 1, reserve=0.08, need=0.03))
    assert not refused.ok and refused.reason == "budget"


async def test_an_unsettled_reservation_expires(state: SharedState) -> None:
    meters = (Meter("t", monthly_usd=1.0),)
    assert (await state.admit(admission(meters, "a", T0, reserve=1.0, need=0.1, ttl_ms=5_000))).ok
    assert not (await state.admit(admission(meters, "b", T0 + 4_000, reserve=1.0, need=0.1))).ok
    assert (await state.admit(admission(meters, "c", T0 + 5_001, reserve=1.0, need=0.1))).ok


async def test_budgets_are_per_tenant(state: SharedState) -> None:
    meters = (Meter("t", monthly_usd=0.1),)
    assert (await state.admit(admission(meters, "a", T0, reserve=0.1, need=0.1, tenant="one"))).ok
    assert not (await state.admit(admission(meters, "b", T0, reserve=0.1, need=0.1, tenant="one"))).ok
    assert (await state.admit(admission(meters, "c", T0, reserve=0.1, need=0.1, tenant="two"))).ok


async def test_redis_keys_expire(redis_server: RedisServer) -> None:
    backend = RedisState(redis_server.url)
    try:
        await backend._client.flushdb()
        meters = (Meter("t", rpm=5, tpm=100, daily_usd=1.0, monthly_usd=2.0),)
        assert (await backend.admit(admission(meters, "a", T0, reserve=0.1, need=0.01, tokens=10))).ok
        keys = [k.decode() for k in await backend._client.keys("*")]
        assert keys and all(k.startswith("mr:{team}:") for k in keys)
        for key in keys:
            assert await backend._client.ttl(key) > 0, key
    finally:
        await backend.aclose()


async def test_redis_unreachable_raises_state_error_fast() -> None:
    from router.tenants.state import StateError

    backend = RedisState("redis://127.0.0.1:1/0", retry_after_failure_s=30)
    try:
        with pytest.raises(StateError):
            await backend.admit(admission((Meter("t", rpm=1),), "a", T0))
        assert not backend.available  # the next call does not even try
        with pytest.raises(StateError):
            await backend.admit(admission((Meter("t", rpm=1),), "b", T0))
    finally:
        await backend.aclose()


def test_fixture_uses_a_private_directory(redis_server: RedisServer) -> None:
    assert os.path.isdir(redis_server.directory) and Path(redis_server.directory).name.startswith("redis")


# --- Redis: one round trip per request (settlements ride on the next admission) -----------------
@pytest.fixture
async def redis_backend(redis_server: RedisServer) -> AsyncIterator[tuple[RedisState, RoundTrips]]:
    backend = RedisState(redis_server.url, settle_delay_s=60.0)  # the timer stays out of the way
    trips = count_round_trips(backend._client)
    await backend._client.flushdb()
    yield backend, trips
    await backend.aclose()


async def test_an_admission_carries_the_queued_settlements_in_its_one_round_trip(
        redis_backend: tuple[RedisState, RoundTrips]) -> None:
    backend, trips = redis_backend
    meters = (Meter("t", monthly_usd=1.0, tpm=10_000),)
    for i in range(3):  # warm: connection open, script loaded
        assert (await backend.admit(admission(meters, f"w{i}", T0 + i, reserve=0.1, need=0.01, tokens=10))).ok
        backend.settle_now(Settlement("team", meters, f"w{i}", 0.0, -10, T0 + i, T0 + i))
    first = await backend.admit(admission(meters, "a", T0 + 10, reserve=0.4, need=0.01, tokens=100))
    assert first.ok and backend.pending == 0
    backend.settle_now(Settlement("team", meters, "a", 0.05, -60, T0 + 11, T0 + 10))
    assert backend.pending == 1
    before = trips.count
    second = await backend.admit(admission(meters, "b", T0 + 12, reserve=0.4, need=0.01, tokens=100))
    assert trips.count - before == 1  # the settlement went with the admission
    assert backend.pending == 0
    reading = second.readings[0]
    assert reading.monthly_spent == pytest.approx(0.05)       # a's actual, applied before b was read
    assert reading.monthly_reserved == pytest.approx(0.4)     # only b's reservation is held
    assert reading.tokens == 140                              # a: 100 - 60, b: 100


async def test_settlements_go_out_within_the_settle_delay_when_traffic_stops(redis_server: RedisServer) -> None:
    backend = RedisState(redis_server.url, settle_delay_s=0.02)
    try:
        await backend._client.flushdb()
        meters = (Meter("t", monthly_usd=1.0),)
        assert (await backend.admit(admission(meters, "a", T0, reserve=0.4, need=0.01))).ok
        backend.settle_now(Settlement("team", meters, "a", 0.05, 0, T0 + 1, T0))
        deadline = time.monotonic() + 10  # the timer fires after 20 ms; generous for a loaded machine
        while backend.pending:
            assert time.monotonic() < deadline, "the flush timer never sent the settlement"
            await asyncio.sleep(0.01)
        reading = (await backend.peek("team", meters, T0 + 2))[0]
        assert (reading.monthly_spent, reading.monthly_reserved) == (pytest.approx(0.05), pytest.approx(0))
    finally:
        await backend.aclose()


async def test_shutdown_flushes_the_queue(redis_server: RedisServer) -> None:
    meters = (Meter("t", monthly_usd=1.0),)
    backend = RedisState(redis_server.url, settle_delay_s=60.0)
    await backend._client.flushdb()
    assert (await backend.admit(admission(meters, "a", T0, reserve=0.4, need=0.01))).ok
    backend.settle_now(Settlement("team", meters, "a", 0.05, 0, T0 + 1, T0))
    await backend.aclose()
    other = RedisState(redis_server.url)
    try:
        reading = (await other.peek("team", meters, T0 + 2))[0]
        assert (reading.monthly_spent, reading.monthly_reserved) == (pytest.approx(0.05), pytest.approx(0))
    finally:
        await other.aclose()


async def test_settlements_carried_by_a_failed_admission_are_kept_and_counted_once(tmp_path: Path) -> None:
    meters = (Meter("t", monthly_usd=1.0),)
    with RedisServer(tmp_path / "redis") as server:
        backend = RedisState(server.url, settle_delay_s=60.0, retry_after_failure_s=0.01)
        try:
            assert (await backend.admit(admission(meters, "a", T0, reserve=0.4, need=0.01))).ok
            backend.settle_now(Settlement("team", meters, "a", 0.05, 0, T0 + 1, T0))
            server.kill()
            with pytest.raises(StateError):
                await backend.admit(admission(meters, "b", T0 + 2, reserve=0.4, need=0.01))
            assert backend.pending == 1  # back in the queue, not lost
            server.start()
            await asyncio.sleep(0.02)  # past the back-off
            c = await backend.admit(admission(meters, "c", T0 + 3, reserve=0.4, need=0.01))
            assert c.ok and backend.pending == 0
            # The same settlement again (as after a lost reply): counted once.
            backend.settle_now(Settlement("team", meters, "a", 0.05, 0, T0 + 4, T0))
            assert await backend.flush()
            reading = (await backend.peek("team", meters, T0 + 5))[0]
            assert reading.monthly_spent == pytest.approx(0.05)
            assert reading.monthly_reserved == pytest.approx(0.4)  # c's; b never reached Redis
        finally:
            await backend.aclose()


async def test_an_admission_settled_before_it_ran_counts_nowhere(
        redis_backend: tuple[RedisState, RoundTrips]) -> None:
    """A stalled admission whose caller gave up (and released it) must not hold money when it runs late."""
    backend, _ = redis_backend
    meters = (Meter("t", rpm=10, monthly_usd=1.0),)
    backend.settle_now(Settlement("team", meters, "late", 0.0, 0, T0, T0))  # the release came first
    assert await backend.flush()
    with pytest.raises(StateError):
        await backend.admit(admission(meters, "late", T0 + 1, reserve=0.4, need=0.01))
    reading = (await backend.peek("team", meters, T0 + 2))[0]
    assert (reading.requests, reading.monthly_reserved) == (0, pytest.approx(0))


def test_periods_are_right_whatever_order_days_are_asked_in() -> None:
    day = 86_400_000
    jan31, feb1 = 1_769_817_600_000, 1_769_817_600_000 + day  # 2026-01-31 and 2026-02-01, 00:00 UTC
    assert periods(feb1 + 5) == ("2026-02-01", "2026-02")
    assert periods(jan31 + day - 1) == ("2026-01-31", "2026-01")  # an older day after a newer one
    assert periods(feb1) == ("2026-02-01", "2026-02")
    assert periods(jan31) == ("2026-01-31", "2026-01")
