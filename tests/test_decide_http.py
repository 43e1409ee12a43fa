"""The decision over HTTP against the demo upstreams: ceilings, budgets, infeasible requests."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest

from router.demo import DemoUpstreams
from tests.conftest import Gateway, default_policy
from tests.support.routing import chat, fast_overrides, router_object

CEILINGS = (1e-7, 2e-6, 1e-5, 3e-5, 1e-4, 5e-4, 2e-3, 1e-2, 0.1, 1.0)
TASKS = ("simple", "reasoning", "coding", "creative")
LONG_QUESTION = ("Explain, step by step, how a B-tree keeps itself balanced on insert and delete, "
                 "and compare it with an LSM tree for a write-heavy workload. ") * 3


@pytest.fixture
def http(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        yield client


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_estimated_and_actual_cost_never_exceed_the_ceiling(http: httpx.Client, demo: DemoUpstreams,
                                                            stream: bool) -> None:
    for name in demo.names:  # unpaced answers: the grid is about money, not time
        demo.set_behavior(name, ttft_ms=0, tokens_per_s=0)
    served, refused, routes = 0, 0, set()
    for task in TASKS:
        for ceiling in CEILINGS:
            r = chat(http, task=task, stream=stream, content=LONG_QUESTION,
                     headers={"x-router-max-cost": f"{ceiling:.10f}"})
            if r.status_code == 400:
                error = r.json()["error"]
                assert error["code"] == "route_infeasible", error
                refused += 1
                continue
            assert r.status_code == 200, r.text
            served += 1
            info = router_object(r)
            routes.add(info["route"])
            assert float(r.headers["x-router-estimated-cost-usd"]) <= ceiling
            assert info["estimated_cost_usd"] <= ceiling
            assert info["cost_usd"] is not None and 0 < info["cost_usd"] <= ceiling, (task, ceiling, info)
            if not stream:
                assert float(r.headers["x-router-cost-usd"]) <= ceiling
    assert served >= len(TASKS) * 4 and refused >= len(TASKS)
    assert len(routes) >= 2  # the grid moves between routes (e.g. Kimi thinking vs instant)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_actual_cost_is_capped_when_the_answer_would_cost_more_than_estimated(
        gateway_factory: Callable[..., Gateway], stream: bool) -> None:
    """The estimate says 16 tokens; the demo answers with ~130: max_tokens keeps the bill in the ceiling."""
    gw = gateway_factory(default_policy(**fast_overrides(
        estimates={"simple": {"output_tokens": 16, "reasoning_tokens": 0}})))
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        free = router_object(chat(http, content=LONG_QUESTION))
        ceiling = free["cost_usd"] / 3
        assert free["estimated_cost_usd"] < ceiling
        r = chat(http, stream=stream, content=LONG_QUESTION, headers={"x-router-max-cost": f"{ceiling:.12f}"})
    assert r.status_code == 200, r.text
    info = router_object(r)
    assert info["route"] == "kimi:instant" and 0 < info["cost_usd"] <= ceiling
    sent = gw.demo.stats("kimi")["last_requests"][-1]["body"]
    assert 0 < sent["max_tokens"] < 130


def test_impossible_ceiling_names_every_candidate_and_its_reason(http: httpx.Client) -> None:
    r = chat(http, task="reasoning", headers={"x-router-max-cost": "0.0000000001"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "route_infeasible")
    for route in default_policy()["tasks"]["reasoning"]["candidates"]:
        # a route of a disabled backend (kimi-api without MOONSHOT_API_KEY) names that first
        assert re.search(rf"{re.escape(route)} \((disabled: [^;]*; )?cost: est\. \$", error["message"]), \
            error["message"]


def test_the_same_through_the_openai_sdk(gateway: Gateway) -> None:
    client = gateway.client()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"router": {"max_cost_usd": 1e-10}})
    assert info.value.code == "route_infeasible"
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "What is 2 + 2?"}],
        extra_body={"router": {"max_cost_usd": 0.001}})
    assert float(raw.headers["x-router-cost-usd"]) <= 0.001
    assert raw.parse().router["cost_usd"] <= 0.001  # type: ignore[attr-defined]


def test_ceiling_and_budget_combine_strictest_of_policy_header_and_body(http: httpx.Client) -> None:
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}],
            "router": {"max_cost_usd": 0.002, "latency_budget_ms": 90_000}}
    limits = http.post("/v1/route", json=body, headers={"x-router-max-cost": "0.01",
                                                        "x-router-latency-budget": "60000"}).json()["limits"]
    assert limits == {"max_cost_usd": 0.002, "latency_budget_ms": 60_000}
    limits = http.post("/v1/route", json={**body, "router": {"max_cost_usd": 50}},
                       headers={"x-router-max-cost": "20"}).json()["limits"]
    assert limits["max_cost_usd"] == 1.0  # the policy default is a ceiling clients cannot raise


def test_best_effort_answers_an_impossible_ceiling(gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(default_policy(**fast_overrides(on_infeasible="best_effort")))
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        for stream in (False, True):
            r = chat(http, stream=stream, headers={"x-router-max-cost": "0.0000000001"})
            assert r.status_code == 200, r.text
            info = router_object(r)
            assert info["best_effort"] is True and info["route"] == "kimi:instant"
            assert info["cost_usd"] <= info["estimated_cost_usd"] * 1.5


def test_tight_latency_budget_picks_instant_over_thinking(gateway_factory: Callable[..., Gateway]) -> None:
    """A Kimi-only pool: a reasoning request thinks, unless the budget leaves no time to."""
    kimi_only = default_policy(backends={b: {"enabled": False} for b in ("gpt", "gpt-mini", "claude")})
    gw = gateway_factory(kimi_only)
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        roomy = chat(http, task="reasoning")
        tight = chat(http, task="reasoning", headers={"x-router-latency-budget": "20000"})
        explained = http.post("/v1/route", json={"model": "auto", "messages": [{"role": "user", "content": "x"}]},
                              headers={"x-router-task-type": "reasoning", "x-router-latency-budget": "20000"}).json()
    assert roomy.status_code == tight.status_code == 200
    assert (roomy.headers["x-router-route"], roomy.headers["x-router-mode"]) == ("kimi:thinking", "thinking")
    assert (tight.headers["x-router-route"], tight.headers["x-router-mode"]) == ("kimi:instant", "instant")
    thinking = next(c for c in explained["candidates"] if c["route"] == "kimi:thinking")
    assert thinking["rejected_because"] == ["latency"] and "budget 20000 ms" in thinking["why"][0]


def test_all_backends_unavailable_is_503_with_retry_after(gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(default_policy(**fast_overrides()))
    for name in ("kimi", "gpt", "gpt-mini", "claude"):
        breaker = gw.services.live.breaker(name)
        for _ in range(3):
            breaker.record(False)
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        r = chat(http)
        body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
        explained = http.post("/v1/route", json=body).json()
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert "circuit of kimi is open" in r.json()["error"]["message"]
    assert explained["feasible"] is False and explained["unavailable"] is True
