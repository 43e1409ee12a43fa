"""The admission queue: a route at max_concurrency makes requests wait (in priority order) rather
than answer 503 at once; 503 + retry-after only when the wait cannot fit the latency budget."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

import httpx
import pytest

from router.engine.admission import AdmissionQueue, QueueFull
from tests.conftest import Gateway, default_policy

HELLO = [{"role": "user", "content": "What is the capital of Peru?"}]


async def test_waiters_are_woken_by_priority_then_arrival() -> None:
    queue = AdmissionQueue(max_depth=10, timeout_s=5, recheck_s=5)
    woken: list[str] = []
    far = time.perf_counter() + 5

    async def wait(name: str, priority: int) -> None:
        seq = queue.ticket()
        await queue.wait({"kimi"}, priority=priority, seq=seq, deadline=far)
        woken.append(name)

    tasks = [asyncio.create_task(wait(n, p)) for n, p in (("low-1", 2), ("normal-1", 1), ("high-1", 0),
                                                          ("normal-2", 1))]
    await asyncio.sleep(0.01)
    assert queue.depth == 4
    queue.released("gpt")  # nobody waits for gpt: nobody wakes
    await asyncio.sleep(0.01)
    assert woken == []
    for _ in range(4):
        queue.released("kimi")
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    assert woken == ["high-1", "normal-1", "normal-2", "low-1"]
    assert queue.depth == 0


async def test_bounded_depth_and_deadline() -> None:
    queue = AdmissionQueue(max_depth=1, timeout_s=5, recheck_s=5)
    first = asyncio.create_task(queue.wait({"kimi"}, priority=1, seq=0, deadline=time.perf_counter() + 5))
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFull):
        await queue.wait({"kimi"}, priority=1, seq=1, deadline=time.perf_counter() + 5)
    assert not await AdmissionQueue(timeout_s=5).wait({"kimi"}, priority=1, seq=0,
                                                        deadline=time.perf_counter() - 0.001)
    queue.released("kimi")
    assert await first
    # What the latency budget can spare bounds the wait, and so does queue_timeout_s.
    arrived = time.perf_counter()
    assert queue.deadline(arrived, latency_budget_ms=1000, estimated_ms=400) == pytest.approx(arrived + 0.6)
    assert queue.deadline(arrived, latency_budget_ms=60_000, estimated_ms=400) == pytest.approx(
        time.perf_counter() + 5, abs=0.01)


def capped_gateway(factory: Callable[..., Gateway], *, queue_timeout_s: float, ttft_ms: float) -> Gateway:
    policy = default_policy(backends={"kimi": {"max_concurrency": 64}})
    gw = factory(policy, settings={"queue_timeout_s": queue_timeout_s})
    gw.demo.set_behavior("kimi", ttft_ms=ttft_ms, tokens_per_s=0)
    return gw


async def _drive(gw: Gateway, clients: int, headers: dict[str, str]) -> list[tuple[int, dict[str, str], float]]:
    limits = httpx.Limits(max_connections=clients + 8, max_keepalive_connections=clients + 8)
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=120, limits=limits) as http:
        async def one() -> tuple[int, dict[str, str], float]:
            started = time.perf_counter()
            r = await http.post("/chat/completions", json={"model": "kimi:instant", "messages": HELLO},
                                headers=headers)
            return r.status_code, dict(r.headers), time.perf_counter() - started

        return await asyncio.gather(*(one() for _ in range(clients)))


def _metric(text: str, pattern: str) -> float:
    match = re.search(pattern + r" ([0-9.e+-]+)", text)
    return float(match.group(1)) if match else 0.0


def test_256_clients_on_a_route_capped_at_64_all_served(gateway_factory: Callable[..., Gateway]) -> None:
    gw = capped_gateway(gateway_factory, queue_timeout_s=60, ttft_ms=150)
    results = asyncio.run(_drive(gw, 256, {}))
    statuses = [status for status, _, _ in results]
    assert statuses.count(200) == 256, {s: statuses.count(s) for s in set(statuses)}
    metrics = httpx.get(f"{gw.url}/metrics").text
    waited = _metric(metrics, r'router_admission_queue_wait_seconds_count\{outcome="admitted",tenant="default"\}')
    assert waited >= 256 - 64 - 16  # nearly every request past the first wave waited (some slots free up first)
    assert _metric(metrics, r'router_admission_queue_wait_seconds_sum\{outcome="admitted",tenant="default"\}') > 0
    assert _metric(metrics, r"router_admission_queue_depth") == 0
    assert gw.services.live.inflight("kimi") == 0


def test_a_tight_latency_budget_sheds_only_what_cannot_be_served_in_time(
        gateway_factory: Callable[..., Gateway]) -> None:
    gw = capped_gateway(gateway_factory, queue_timeout_s=60, ttft_ms=400)
    for _ in range(8):  # the route's live estimate learns the 400 ms answers
        httpx.post(f"{gw.base_url}/chat/completions", json={"model": "kimi:instant", "messages": HELLO}, timeout=30)
    budget_ms = 1500
    results = asyncio.run(_drive(gw, 256, {"X-Router-Latency-Budget": str(budget_ms)}))
    ok = [r for r in results if r[0] == 200]
    shed = [r for r in results if r[0] != 200]
    assert {status for status, _, _ in shed} <= {503}
    assert all("retry-after" in headers for _, headers, _ in shed)
    assert len(ok) >= 64 and shed, (len(ok), len(shed))  # the first wave always; not everyone fits
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert _metric(metrics, r'router_admission_queue_wait_seconds_count\{outcome="timeout",tenant="default"\}') \
        == len(shed)
    # Shed requests are told early (within the budget), not after a long wait. Measured by the gateway:
    # the client's own clock also counts how long 256 client tasks wait for a loaded 2-core machine.
    assert _metric(metrics, r'router_admission_queue_wait_seconds_bucket\{le="2.5",outcome="timeout",'
                            r'tenant="default"\}') == len(shed)
    assert max(elapsed for _, _, elapsed in shed) < budget_ms / 1000 + 10.0  # and never a hang
