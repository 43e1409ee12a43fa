"""A request is classified once, even when it waits in the admission queue and is prepared again
each time its route may have room: one classifier run and one confidence observation per request."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import httpx

from tests.conftest import Gateway, default_policy

HELLO = [{"role": "user", "content": "What is the capital of Peru?"}]
CLIENTS = 24


def _count(metrics: str, pattern: str) -> float:
    return sum(float(v) for v in re.findall(pattern + r" ([0-9.e+-]+)", metrics))


async def _drive(gw: Gateway) -> list[int]:
    limits = httpx.Limits(max_connections=CLIENTS + 4, max_keepalive_connections=CLIENTS + 4)
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=60, limits=limits) as http:
        async def one() -> int:
            r = await http.post("/chat/completions", json={"model": "kimi:instant", "messages": HELLO})
            return r.status_code

        return await asyncio.gather(*(one() for _ in range(CLIENTS)))


def test_a_queued_request_is_classified_once(gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(default_policy(backends={"kimi": {"max_concurrency": 4}}),
                         settings={"queue_timeout_s": 30})
    gw.demo.set_behavior("kimi", ttft_ms=100, tokens_per_s=0)
    statuses = asyncio.run(_drive(gw))
    assert statuses.count(200) == CLIENTS, statuses
    metrics = httpx.get(f"{gw.url}/metrics").text
    waited = _count(metrics, r'router_admission_queue_wait_seconds_count\{outcome="admitted",tenant="default"\}')
    assert waited >= CLIENTS - 8  # most waited, so most were prepared more than once
    assert _count(metrics, r"router_classifier_confidence_count\{[^}]*\}") == CLIENTS
