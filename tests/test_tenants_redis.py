"""Acceptance: three gateways share one real redis-server; limits hold across them, and through a
Redis outage (kill -9 and restart mid-run) in the documented failure modes.

Each gateway is a real app under uvicorn with its own ``Services`` (own event loop, own Redis
connections, own live state), all behind one key of one tenant, driven concurrently over HTTP.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from router.demo import DemoUpstreams
from router.tenants import manage
from tests.conftest import Gateway
from tests.support.redis_server import RedisServer

HELLO = [{"role": "user", "content": "What is the capital of Peru?"}]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as server:
        yield server


def three_gateways(factory: Callable[..., Gateway], demo: DemoUpstreams, tmp_path: Path, redis_url: str,
                   tenant: dict[str, Any], **settings: Any) -> tuple[list[Gateway], str]:
    path = tmp_path / "tenants.yaml"
    path.write_text(yaml.safe_dump({"tenants": {"team": tenant}}))
    key = manage.create_key(path, "team").key
    gateways = [factory(demo=demo, settings={"tenants_file": path, "redis_url": redis_url, "replicas": 3,
                                             **settings}) for _ in range(3)]
    return gateways, key


async def _fire(gateways: list[Gateway], key: str, count: int, model: str = "gpt:default"
                ) -> list[httpx.Response]:
    clients = [httpx.AsyncClient(base_url=gw.base_url, timeout=60, headers={"Authorization": f"Bearer {key}"},
                                 limits=httpx.Limits(max_connections=count)) for gw in gateways]
    try:
        targets = itertools.cycle(clients)
        return await asyncio.gather(*(next(targets).post("/chat/completions",
                                                         json={"model": model, "messages": HELLO})
                                      for _ in range(count)))
    finally:
        for client in clients:
            await client.aclose()


def _me(gw: Gateway, key: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{gw.base_url}/router/tenants/me",
                                     headers={"Authorization": f"Bearer {key}"}, timeout=10).json()
    return body


def _settled(gateways: list[Gateway], timeout_s: float = 10) -> None:
    """Wait until every gateway's settlements have reached Redis (none queued or unanswered)."""
    deadline = time.monotonic() + timeout_s
    while any(gw.services.tenants.enforcer.state.pending for gw in gateways):  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, f"settlements still queued after {timeout_s} s"
        time.sleep(0.02)


def test_rate_limit_is_global_across_three_gateways(gateway_factory: Callable[..., Gateway], demo: DemoUpstreams,
                                                    tmp_path: Path, redis_server: RedisServer) -> None:
    rpm = 90
    gateways, key = three_gateways(gateway_factory, demo, tmp_path, redis_server.url, {"rpm": rpm})
    responses = asyncio.run(_fire(gateways, key, 150))
    admitted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert all(r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
               and "retry-after" in r.headers for r in refused)
    assert abs(len(admitted) - rpm) <= 0.05 * rpm and len(admitted) <= rpm, len(admitted)
    # Each gateway admitted some of them: the limit is shared, not per replica.
    assert _me(gateways[0], key)["usage"][0]["requests_per_minute"]["used"] == len(admitted)


def test_budget_is_global_across_three_gateways(gateway_factory: Callable[..., Gateway], demo: DemoUpstreams,
                                                tmp_path: Path, redis_server: RedisServer) -> None:
    budget = 0.03  # a few requests' worth; each may reserve up to its ceiling of $0.01
    gateways, key = three_gateways(gateway_factory, demo, tmp_path, redis_server.url,
                                   {"monthly_budget_usd": budget, "max_cost_usd": {"max": 0.01}})
    spent = 0.0
    codes: set[str] = set()
    for _ in range(80):  # waves of concurrent requests until the budget refuses everything
        responses = asyncio.run(_fire(gateways, key, 12))
        spent += sum(float(r.headers["x-router-cost-usd"]) for r in responses if r.status_code == 200)
        codes |= {r.json()["error"]["code"] for r in responses if r.status_code != 200}
        if all(r.status_code == 429 for r in responses):
            break
    else:
        pytest.fail(f"the budget never refused: spent {spent}, {_me(gateways[0], key)['usage']}")
    assert codes == {"insufficient_quota"}
    assert 0 < spent <= budget + 1e-12  # reservations: not even one request's ceiling over
    # The last settlements are flushed in the background (settle_delay_s, then one round trip): wait
    # (bounded) until no gateway has one queued or in flight, rather than sleep and hope.
    _settled(gateways)
    monthly = _me(gateways[1], key)["usage"][0]["monthly_budget_usd"]
    assert monthly["spent"] == pytest.approx(spent, rel=1e-6, abs=1e-9)  # every answer counted once
    assert monthly["reserved"] == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize(("budgets", "rate_limits"), [("closed", "open"), ("open", "closed")])
def test_redis_outage_mid_run(gateway_factory: Callable[..., Gateway], demo: DemoUpstreams, tmp_path: Path,
                              redis_server: RedisServer, budgets: str, rate_limits: str) -> None:
    demo.set_behavior("gpt", ttft_ms=150)  # requests are in flight when Redis dies
    gateways, key = three_gateways(gateway_factory, demo, tmp_path, redis_server.url,
                                   {"monthly_budget_usd": 100.0, "rpm": 100_000},
                                   redis_failure_budgets=budgets, redis_failure_rate_limits=rate_limits)
    results: list[httpx.Response] = []
    phase: dict[str, list[httpx.Response]] = {"before": [], "outage": [], "after": []}
    current = ["before"]

    async def drive(stop: asyncio.Event) -> None:
        clients = [httpx.AsyncClient(base_url=gw.base_url, timeout=60, headers={"Authorization": f"Bearer {key}"})
                   for gw in gateways]

        async def worker(client: httpx.AsyncClient) -> None:
            while not stop.is_set():
                label = current[0]
                r = await client.post("/chat/completions", json={"model": "gpt:default", "messages": HELLO})
                results.append(r)
                # "before": sent and answered before the kill; "after": sent after the restart.
                phase["outage" if label == "before" != current[0] else label].append(r)

        try:
            await asyncio.gather(*(worker(c) for c in clients for _ in range(4)))
        finally:
            for client in clients:
                await client.aclose()

    async def scenario() -> None:
        stop = asyncio.Event()
        load = asyncio.create_task(drive(stop))
        await asyncio.sleep(1.0)
        current[0] = "outage"
        await asyncio.to_thread(redis_server.kill)
        await asyncio.sleep(1.5)
        await asyncio.to_thread(redis_server.start)
        current[0] = "after"
        await asyncio.sleep(2.5)  # past the 1 s back-off: every gateway reconnects
        stop.set()
        await load

    asyncio.run(scenario())
    # No request crashed: every answer is a success or a documented refusal, in OpenAI's shape.
    assert {r.status_code for r in results} <= {200, 503}
    for r in results:
        if r.status_code == 503:
            assert r.json()["error"]["code"] == "limits_unavailable" and r.headers["retry-after"] == "1"
    assert all(r.status_code == 200 for r in phase["before"]), [(r.status_code, r.text) for r in phase["before"]
                                                                if r.status_code != 200]
    refused_in_outage = [r for r in phase["outage"] if r.status_code == 503]
    # Closed for either kind (this tenant has both) means refused while Redis is away.
    assert refused_in_outage, "the closed failure mode refused nothing during the outage"
    assert phase["after"][-1].status_code == 200 and sum(r.status_code == 200 for r in phase["after"]) > 5
    # Nothing lost, nothing double-counted: Redis holds exactly what the answers cost.
    _settled(gateways)
    spent = sum(float(r.headers["x-router-cost-usd"]) for r in results if r.status_code == 200)
    monthly = _me(gateways[2], key)["usage"][0]["monthly_budget_usd"]
    assert monthly["spent"] == pytest.approx(spent, rel=1e-6)
    assert monthly["reserved"] == pytest.approx(0, abs=1e-9)
    for gw in gateways:
        assert gw.services.tenants.enforcer.state.pending == 0  # type: ignore[attr-defined]


def test_open_modes_admit_through_an_outage_and_count_afterwards(
        gateway_factory: Callable[..., Gateway], demo: DemoUpstreams, tmp_path: Path,
        redis_server: RedisServer) -> None:
    gateways, key = three_gateways(gateway_factory, demo, tmp_path, redis_server.url,
                                   {"monthly_budget_usd": 100.0, "rpm": 100_000},
                                   redis_failure_budgets="open", redis_failure_rate_limits="open")
    before = asyncio.run(_fire(gateways, key, 9))
    redis_server.kill()
    during = asyncio.run(_fire(gateways, key, 9))
    assert all(r.status_code == 200 for r in before + during)
    redis_server.start()
    time.sleep(1.5)  # back-off over; queued settlements go out
    deadline = time.monotonic() + 10
    spent = sum(float(r.headers["x-router-cost-usd"]) for r in before + during)
    while time.monotonic() < deadline:
        me = _me(gateways[0], key)
        if me["usage"] and me["usage"][0]["monthly_budget_usd"]["spent"] == pytest.approx(spent, rel=1e-6):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"spend after recovery: {me}")


def test_replicas_without_redis_refuse_to_start_when_budgets_are_configured(
        gateway_factory: Callable[..., Gateway], tmp_path: Path) -> None:
    from router.tenants import TenantsError

    path = tmp_path / "tenants.yaml"
    path.write_text(yaml.safe_dump({"tenants": {"team": {"monthly_budget_usd": 10}}}))
    with pytest.raises(TenantsError, match="ROUTER_REDIS_URL"):
        gateway_factory(settings={"tenants_file": path, "replicas": 2})
