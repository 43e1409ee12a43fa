"""A hung primary costs a few of its route's own first-token times, not the fixed 30 s floor."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from router.engine.live import LiveState
from router.policy.loader import load_policy_text
from router.policy.model import RetrySettings
from router.settings import PACKAGED_POLICY
from tests.conftest import Gateway, default_policy
from tests.support.routing import QUESTION, fast_overrides

RETRY = RetrySettings(first_token_factor=3.0, first_token_quantile=0.99, first_token_min_s=0.5,
                      first_token_min_samples=20)


def _live() -> LiveState:
    loaded = load_policy_text(PACKAGED_POLICY.read_text(), env={"KIMI_API_BASE": "http://kimi.invalid/v1"})
    return LiveState(loaded.policy)


def test_the_floor_is_the_ceiling_until_the_route_has_enough_observations() -> None:
    live = _live()
    for _ in range(19):
        live.observe_latency("kimi:instant", ttft_ms=200, output_tokens=10, generation_s=0.1)
    assert live.hang_floor_s("kimi:instant", RETRY, 30.0, stream=True) == 30.0
    live.observe_latency("kimi:instant", ttft_ms=200, output_tokens=10, generation_s=0.1)
    assert live.hang_floor_s("kimi:instant", RETRY, 30.0, stream=True) == 0.6  # 3 x p99 (200 ms)


def test_the_floor_follows_the_high_quantile_and_stays_within_its_bounds() -> None:
    live = _live()
    for i in range(100):  # 1..100 ms: p99 = 99 ms
        live.observe_latency("kimi:instant", ttft_ms=i + 1, output_tokens=10, generation_s=0.1)
    assert live.hang_floor_s("kimi:instant", RETRY, 30.0, stream=True) == 0.5  # 0.297 s, raised to the min
    for _ in range(256):  # the window forgets: now every TTFT is 4 s
        live.observe_latency("kimi:instant", ttft_ms=4000, output_tokens=10, generation_s=0.1)
    assert live.hang_floor_s("kimi:instant", RETRY, 30.0, stream=True) == 12.0
    assert live.hang_floor_s("kimi:instant", RETRY, 10.0, stream=True) == 10.0  # never above the ceiling
    # JSON answers learn from their totals, apart from the streams' TTFTs.
    assert live.hang_floor_s("kimi:instant", RETRY, 30.0, stream=False) == 30.0
    off = RETRY.model_copy(update={"first_token_factor": 0})
    assert live.hang_floor_s("kimi:instant", off, 30.0, stream=True) == 30.0


def test_a_route_with_no_recent_success_relearns_from_the_ceiling() -> None:
    now = [1000.0]
    loaded = load_policy_text(PACKAGED_POLICY.read_text(), env={"KIMI_API_BASE": "http://kimi.invalid/v1"})
    live = LiveState(loaded.policy, clock=lambda: now[0])
    for _ in range(30):
        live.observe_latency("kimi:instant", ttft_ms=200, output_tokens=10, generation_s=0.1)
    assert live.hang_floor_s("kimi:instant", RETRY, 30.0, stream=True) == 0.6
    now[0] += 61  # every attempt since was cut as hung (those are not learned): start over
    assert live.hang_floor_s("kimi:instant", RETRY, 30.0, stream=True) == 30.0


def test_a_hung_primary_falls_back_within_five_times_its_p99_ttft(gateway_factory: Callable[..., Gateway]) -> None:
    policy = default_policy(**fast_overrides(
        backends={name: {"first_token_timeout_s": 30, "timeout_s": 60} for name in ("kimi", "gpt", "gpt-mini")},
        retry={"attempts_per_route": 1, "first_token_factor": 2.0, "first_token_min_s": 0.05,
               "first_token_min_samples": 20},
        circuit={"consecutive_failures": 50}))
    gw = gateway_factory(policy)
    for name in ("kimi", "gpt"):
        gw.demo.set_behavior(name, ttft_ms=150, tokens_per_s=0)
    body = {"model": "auto", "stream": True, "messages": [{"role": "user", "content": QUESTION}]}
    headers = {"x-router-task-type": "simple"}
    with httpx.Client(base_url=gw.url, timeout=60) as http:
        for _ in range(30):  # the primary's observed TTFT distribution
            r = http.post("/v1/chat/completions", json=body, headers=headers)
            assert r.status_code == 200 and r.headers["x-router-route"] == "kimi:instant"
        stats = gw.services.live._routes["kimi:instant"].ttfts
        p99_s = stats.quantile(0.99) / 1000
        gw.demo.set_behavior("kimi", timeout_rate=1.0, hang_s=30)  # the primary hangs
        started = time.perf_counter()
        with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
            assert r.status_code == 200
            first_line = next(line for line in r.iter_lines() if line.startswith("data:"))
            elapsed = time.perf_counter() - started
            assert r.headers["x-router-route"] != "kimi:instant" and r.headers["x-router-fallbacks"] == "1"
    assert "content" in first_line or "role" in first_line
    # 30 s before; now the floor (2 x p99) plus the fallback's own first token (~ the same p99).
    assert elapsed < 5 * p99_s, (elapsed, p99_s)
