"""Live signals over HTTP: observed latency moves traffic, the engine queue spills it and takes it back."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.conftest import Gateway, default_policy
from tests.support.routing import chat, fast_overrides, wait_until

BUDGET_MS = "600"  # Kimi and Claude both fit (~405 ms estimated) until Kimi slows down
MAX_REQUESTS = 10
# EWMA weight 0.3: a stream's measured TTFT crosses the budget after 1 slow answer; a JSON answer
# shows only its total, which moves the estimate a bit slower (3 with these numbers).
BOUND = {True: 3, False: 5}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_raising_kimi_ttft_shifts_traffic_to_a_vendor_within_a_bounded_number_of_requests(
        gateway_factory: Callable[..., Gateway], stream: bool) -> None:
    gw = gateway_factory(default_policy(**fast_overrides()))
    budget = {"x-router-latency-budget": BUDGET_MS}
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        for _ in range(3):
            assert chat(http, stream=stream, headers=budget).headers["x-router-route"] == "kimi:instant"
        before = http.get("/v1/router/status").json()["backends"]["kimi"]["routes"]["kimi:instant"]

        gw.demo.set_behavior("kimi", ttft_ms=700)
        routes = []
        for _ in range(MAX_REQUESTS):
            r = chat(http, stream=stream, headers=budget)
            assert r.status_code == 200, r.text
            routes.append(r.headers["x-router-route"])
            if routes[-1] != "kimi:instant":
                break
        after = http.get("/v1/router/status").json()["backends"]["kimi"]["routes"]["kimi:instant"]
        explained = http.post("/v1/route", json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
                              headers={"x-router-task-type": "simple", **budget}).json()
    assert routes[-1] != "kimi:instant", f"still on Kimi after {MAX_REQUESTS} slow answers: {routes}"
    assert len(routes) <= BOUND[stream], routes
    kimi = next(c for c in explained["candidates"] if c["route"] == "kimi:instant")
    assert kimi["rejected_because"] == ["latency"]
    if stream:
        assert after["ttft_ms"] > before["ttft_ms"] + 200
    else:  # the learned total for a typical answer went up
        assert (after["ttft_ms"] + 150 / after["output_tokens_per_s"] * 1000
                > before["ttft_ms"] + 150 / before["output_tokens_per_s"] * 1000 + 300)


def test_a_full_engine_queue_spills_to_vendors_while_the_ceiling_allows_and_traffic_returns(
        gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(default_policy(**fast_overrides(backends={"kimi": {"queue_capacity": 8}})))
    live = gw.services.live

    def route(**headers: str) -> str:
        return chat(http, headers=headers).headers["x-router-route"]

    with httpx.Client(base_url=gw.url, timeout=30) as http:
        assert wait_until(lambda: live.queue("kimi")["waiting"] == 0)  # the scraper is reading
        assert route() == "kimi:instant"

        gw.demo.set_behavior("kimi", queue_waiting=20)  # vLLM reports 20 waiting >= capacity 8
        assert wait_until(lambda: live.queue("kimi")["waiting"] == 20, timeout_s=2)
        spilled = [route() for _ in range(5)]
        assert all(r != "kimi:instant" for r in spilled), spilled
        status = http.get("/v1/router/status").json()["backends"]["kimi"]["engine_queue"]
        assert status["waiting"] == 20 and status["expected_wait_ms"] > 0

        # A ceiling no vendor fits: the request waits in Kimi's queue instead of being refused.
        assert route(**{"x-router-max-cost": "0.0003"}) == "kimi:instant"

        gw.demo.set_behavior("kimi", queue_waiting=0)  # the queue drains
        assert wait_until(lambda: live.queue("kimi")["waiting"] == 0, timeout_s=2)
        assert route() == "kimi:instant"
    assert gw.demo.stats("gpt")["requests"] + gw.demo.stats("claude")["requests"] >= 5


def test_queue_wait_below_capacity_still_counts_against_the_budget(gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(default_policy(**fast_overrides(backends={"kimi": {"queue_capacity": 100}})))
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        gw.demo.set_behavior("kimi", queue_waiting=10)
        assert wait_until(lambda: gw.services.live.queue("kimi")["waiting"] == 10, timeout_s=2)
        r = chat(http, headers={"x-router-latency-budget": "2000"})
    assert r.status_code == 200 and r.headers["x-router-route"] != "kimi:instant"
