"""A bounded load run on loopback: mixed JSON/SSE traffic at high concurrency, with and without a
failing primary — every request answered, nothing left in flight, every request counted once."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import openai

from tests.conftest import Gateway, default_policy

PROMPTS = ["What is the boiling point of water at altitude?", "Write a limerick about a cat",
           "Fix: IndexError: list index out of range in my loop", "Prove there are infinitely many primes"]


async def _one(client: openai.AsyncOpenAI, i: int) -> str:
    messages: Any = [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]
    if i % 2:
        stream = await client.chat.completions.create(model="auto", messages=messages, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    else:
        answer = await client.chat.completions.create(model="auto", messages=messages)
        text = answer.choices[0].message.content or ""
    return text


async def _run(gw: Gateway, requests: int, concurrency: int) -> list[str | BaseException]:
    client = gw.async_client(timeout=60)
    gate = asyncio.Semaphore(concurrency)

    async def bounded(i: int) -> str:
        async with gate:
            return await _one(client, i)

    try:
        return await asyncio.wait_for(asyncio.gather(*(bounded(i) for i in range(requests)),
                                                     return_exceptions=True), timeout=120)
    finally:
        await client.close()


def _counted(gw: Gateway) -> int:
    text = httpx.get(f"{gw.url}/metrics").text
    return sum(int(float(v)) for v in re.findall(r'^router_requests_total\{[^}]*status="ok"[^}]*\} (\S+)$',
                                                  text, re.MULTILINE))


def test_mixed_traffic_at_high_concurrency(gateway_factory: Any) -> None:
    gw: Gateway = gateway_factory()
    results = asyncio.run(_run(gw, requests=240, concurrency=80))
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures[:3]
    assert all(results)
    assert _counted(gw) == 240
    assert all(gw.services.live.inflight(b) == 0 for b in ("kimi", "gpt", "gpt-mini", "claude"))


def test_load_with_a_flaky_primary_still_answers_everything(gateway_factory: Any) -> None:
    gw: Gateway = gateway_factory(default_policy(retry={"backoff_base_ms": 5, "backoff_max_ms": 20}))
    gw.demo.set_behavior("kimi", error_rate=0.3, error_status=503)
    results = asyncio.run(_run(gw, requests=160, concurrency=40))
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures[:3]
    assert _counted(gw) == 160
    assert all(gw.services.live.inflight(b) == 0 for b in ("kimi", "gpt", "gpt-mini", "claude"))
