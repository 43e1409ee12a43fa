"""Execution guards over HTTP: a primary failing every request, retries, fallbacks, the circuit."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway, default_policy
from tests.support.routing import QUESTION, chat, fast_overrides, merge, router_object, wait_until

# (demo behaviour of the failing Kimi, the demo's injected-failure counter, attempts per request)
FAULTS: dict[str, tuple[dict[str, Any], str, int]] = {
    "5xx": ({"error_rate": 1.0, "error_status": 503}, "error", 2),
    "timeout": ({"timeout_rate": 1.0, "hang_s": 5}, "timeout", 2),
    "429": ({"rate_limit_rate": 1.0, "retry_after_s": 0.02}, "rate_limit", 2),
    "abort_before_first_token": ({"fail_after_chunks": 0}, "abort", 1),  # role chunk, then the line drops
}
REQUESTS = 6


def failing_primary_gateway(factory: Callable[..., Gateway], **extra: Any) -> Gateway:
    # A short timeout on the faulty backend only; the vendors keep theirs.
    return factory(default_policy(**merge(fast_overrides(backends={"kimi": {"timeout_s": 0.3}}), extra)))


# An aborted stream is a streaming fault only, so it has no JSON case.
_CASES = [pytest.param(fault, stream, id=f"{fault}-{'sse' if stream else 'json'}")
          for fault in FAULTS for stream in (False, True)
          if stream or fault != "abort_before_first_token"]


@pytest.mark.parametrize(("fault", "stream"), _CASES)
def test_every_request_succeeds_through_the_chain_and_the_circuit_opens_then_closes(
        gateway_factory: Callable[..., Gateway], fault: str, stream: bool) -> None:
    behaviour, counter, attempts = FAULTS[fault]
    gw = failing_primary_gateway(gateway_factory)
    gw.demo.set_behavior("kimi", **behaviour)
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        responses = [chat(http, stream=stream) for _ in range(REQUESTS)]
        for r in responses:
            assert r.status_code == 200, r.text
            assert r.headers["x-router-route"] != "kimi:instant"
            assert router_object(r)["fallbacks"] == int(r.headers["x-router-fallbacks"])
        # Estimates reported are those of the route that answered, not of the failed first choice.
        explained = http.post("/v1/route", json={"model": "auto", "messages": [{"role": "user", "content": QUESTION}]},
                              headers={"x-router-task-type": "simple"}).json()
        estimates = {c["route"]: c["estimated_cost_usd"] for c in explained["candidates"]}
        first = responses[0]
        assert float(first.headers["x-router-estimated-cost-usd"]) == pytest.approx(
            estimates[first.headers["x-router-route"]], rel=1e-6)
        fallbacks = [int(r.headers["x-router-fallbacks"]) for r in responses]
        # x-router-fallbacks counts exactly the failed attempts the primary saw.
        assert fallbacks[0] == attempts
        assert sum(fallbacks) == gw.demo.stats("kimi")["injected"][counter]
        breaker = gw.services.live.breaker("kimi")
        assert breaker.opened_count >= 1
        assert 0 in fallbacks  # while open, the primary is not even tried
        assert http.get("/v1/router/status").json()["backends"]["kimi"]["circuit"] in ("open", "half_open")
        assert 'router_backend_circuit_state{backend="kimi"} 2.0' in http.get("/metrics").text

        gw.demo.reset("kimi")  # the primary recovers; a half-open probe closes the circuit
        back = wait_until(lambda: chat(http, stream=stream).headers["x-router-route"] == "kimi:instant",
                          timeout_s=5, interval_s=0.05)
        assert back and breaker.state == "closed"
        assert http.get("/v1/router/status").json()["backends"]["kimi"]["circuit"] == "closed"
        assert 'router_backend_circuit_state{backend="kimi"} 0.0' in http.get("/metrics").text


def test_retry_after_is_honoured_up_to_the_cut_off(gateway_factory: Callable[..., Gateway]) -> None:
    gw = failing_primary_gateway(gateway_factory, circuit={"consecutive_failures": 50})
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        gw.demo.set_behavior("kimi", rate_limit_rate=1.0, retry_after_s=0.15)  # <= max_retry_after_s 0.2
        started = time.perf_counter()
        honoured = chat(http)
        waited = time.perf_counter() - started
        gw.demo.set_behavior("kimi", retry_after_s=3)  # > 0.2: leave the route at once
        started = time.perf_counter()
        cut = chat(http)
        skipped = time.perf_counter() - started
    assert honoured.status_code == cut.status_code == 200
    assert honoured.headers["x-router-fallbacks"] == "2" and waited >= 0.15
    assert cut.headers["x-router-fallbacks"] == "1" and skipped < 1.0


def test_a_fallback_that_no_longer_fits_the_budget_is_not_tried(gateway_factory: Callable[..., Gateway]) -> None:
    gw = failing_primary_gateway(gateway_factory, circuit={"consecutive_failures": 50})
    gw.demo.set_behavior("kimi", timeout_rate=1.0, hang_s=5)
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        r = chat(http, headers={"x-router-latency-budget": "700"})
    assert r.status_code == 504, r.text
    assert r.json()["error"]["code"] == "upstream_timeout"
    assert "skipped (latency)" in r.json()["error"]["message"]
    assert gw.demo.stats("gpt")["requests"] == 0 and gw.demo.stats("claude")["requests"] == 0


def test_when_every_route_fails_the_client_gets_502(gateway_factory: Callable[..., Gateway]) -> None:
    gw = failing_primary_gateway(gateway_factory, circuit={"consecutive_failures": 50})
    for name in ("kimi", "gpt", "claude"):
        gw.demo.set_behavior(name, error_rate=1.0, error_status=500)
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        r = chat(http)
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_error"
    assert "kimi:instant: http_5xx" in r.json()["error"]["message"]


def test_a_client_leaving_mid_stream_is_no_verdict_on_the_backend(gateway_factory: Callable[..., Gateway]) -> None:
    gw = failing_primary_gateway(gateway_factory, circuit={"consecutive_failures": 1})
    gw.demo.set_behavior("kimi", tokens_per_s=20)  # slow enough to hang up in the middle
    body = {"model": "auto", "stream": True, "messages": [{"role": "user", "content": "Tell me a long story."}]}
    for _ in range(2):
        with httpx.Client(base_url=gw.url, timeout=30) as http, \
                http.stream("POST", "/v1/chat/completions", json=body, headers={"x-router-task-type": "simple"}) as r:
            assert r.status_code == 200
            next(r.iter_lines())
    assert wait_until(lambda: gw.services.live.inflight("kimi") == 0)
    assert gw.services.live.breaker("kimi").state == "closed"


def test_fallbacks_spend_only_what_is_left_of_the_ceiling(gateway_factory: Callable[..., Gateway]) -> None:
    """A timed-out attempt may have been billed its prompt: the fallback gets the rest of the money."""
    gw = failing_primary_gateway(gateway_factory, circuit={"consecutive_failures": 50},
                                 backends={"kimi": {"pricing": {"input_per_mtok": 4.0, "output_per_mtok": 1.0}}},
                                 tasks={"simple": {"candidates": ["kimi:instant", "claude:default"]}})
    gw.demo.set_behavior("kimi", timeout_rate=1.0, hang_s=5)
    prompt = "Summarise this note in one line. " + "The quarterly numbers were flat. " * 120  # ~1000 tokens
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        explained = http.post("/v1/route", json={"model": "auto", "messages": [{"role": "user", "content": prompt}]},
                              headers={"x-router-task-type": "simple", "x-router-max-cost": "0.006"}).json()
        assert explained["choice"] == "kimi:instant" and explained["fallbacks"] == ["claude:default"]
        tight = chat(http, content=prompt, headers={"x-router-max-cost": "0.006"})
        roomy = chat(http, content=prompt, headers={"x-router-max-cost": "0.05"})
    assert tight.status_code == 504, tight.text
    assert "claude:default: skipped (cost)" in tight.json()["error"]["message"]
    assert roomy.status_code == 200 and roomy.headers["x-router-route"] == "claude:default"
    assert float(roomy.headers["x-router-cost-usd"]) <= 0.05


def test_openai_sdk_stream_falls_back_before_the_first_token(gateway_factory: Callable[..., Gateway]) -> None:
    gw = failing_primary_gateway(gateway_factory)
    gw.demo.set_behavior("kimi", fail_after_chunks=0)
    stream = gw.client().chat.completions.with_raw_response.create(
        model="auto", stream=True, messages=[{"role": "user", "content": QUESTION}],
        extra_headers={"x-router-task-type": "simple"})
    assert stream.headers["x-router-fallbacks"] == "1"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream.parse() if chunk.choices)
    assert text.strip()  # a whole answer from the fallback, nothing from the dead stream
    assert stream.headers["x-router-route"] != "kimi:instant"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_hung_primary_is_left_in_time_for_a_fallback_to_answer(gateway_factory: Callable[..., Gateway],
                                                                 stream: bool) -> None:
    """The packaged policy's long backend timeout_s (300 s) does not hold a request on a hang: the
    attempt's own limit comes from its estimate (and, for streams, the first-token timeout)."""
    policy = default_policy(retry={"attempts_per_route": 1},
                            backends={"kimi": {"first_token_timeout_s": 1,
                                               "latency": {"ttft_ms": 100, "output_tokens_per_s": 1000}}})
    gw = gateway_factory(policy)
    gw.demo.set_behavior("kimi", timeout_rate=1.0, hang_s=60)
    started = time.monotonic()
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        response = chat(http, stream=stream)
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.headers["x-router-route"] != "kimi:instant"
    assert int(response.headers["x-router-fallbacks"]) == 1
    assert elapsed < 8, f"took {elapsed:.1f} s"
