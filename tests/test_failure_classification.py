"""Which failures are charged to a backend's circuit, and which move on to the next route.

A failure that follows the *request* (a malformed tool schema refused with a 400, the same internal
error reproduced on every backend) must not open the circuits — otherwise three bad requests take
the gateway down for everyone. A parameter one route cannot take moves on to the next route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway, default_policy
from tests.support.routing import chat, fast_overrides, sse_events

BAD_TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "Look something up.",
                                               "parameters": {"type": "object", "properties": 5}}}]
GOOD_TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "Look something up.",
                                                "parameters": {"type": "object",
                                                               "properties": {"q": {"type": "string"}}}}}]


def _gateway(factory: Callable[..., Gateway], **extra: Any) -> Gateway:
    return factory(default_policy(**fast_overrides(**extra)))


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_hundred_malformed_tool_schemas_open_no_circuit(gateway_factory: Callable[..., Gateway],
                                                          stream: bool) -> None:
    gw = _gateway(gateway_factory)
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        for _ in range(100):
            r = chat(http, task=None, stream=stream, tools=BAD_TOOLS, content="Look up the weather in Paris.")
            assert r.status_code == 400, r.text
            error = r.json()["error"]
            assert error["type"] == "invalid_request_error"
            assert error["param"] == "tools[0].function.parameters"  # the upstream's own param, kept
            assert "properties" in error["message"]
        assert {b.state for b in (gw.services.live.breaker(n) for n in ("kimi", "gpt", "gpt-mini", "claude"))} \
            == {"closed"}
        assert http.get("/readyz").status_code == 200
        ok = chat(http, task=None, tools=GOOD_TOOLS, content="Look up the weather in Paris.")
        assert ok.status_code == 200, ok.text
        assert ok.headers["x-router-fallbacks"] == "0"
        # The rejection reached exactly one upstream per request: no retries, no fallbacks.
        assert sum(gw.demo.stats(n)["rejected"] for n in ("kimi", "gpt", "claude")) == 100


def test_an_internal_error_every_backend_reproduces_is_charged_to_none(
        gateway_factory: Callable[..., Gateway]) -> None:
    gw = _gateway(gateway_factory, circuit={"consecutive_failures": 1})
    for name in ("kimi", "gpt", "claude"):
        gw.demo.set_behavior(name, error_rate=1.0, error_status=500)
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        assert chat(http).status_code == 502
        assert {gw.services.live.breaker(n).state for n in ("kimi", "gpt", "gpt-mini", "claude")} == {"closed"}
        assert http.get("/readyz").status_code == 200


def test_an_outage_everywhere_still_opens_the_circuits(gateway_factory: Callable[..., Gateway]) -> None:
    gw = _gateway(gateway_factory, circuit={"consecutive_failures": 1})
    for name in ("kimi", "gpt", "claude"):
        gw.demo.set_behavior(name, error_rate=1.0, error_status=503)  # unavailable: the backend's state
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        assert chat(http).status_code == 502
    assert gw.services.live.breaker("kimi").state == "open"


def test_an_internal_error_another_backend_does_not_share_is_charged(
        gateway_factory: Callable[..., Gateway]) -> None:
    gw = _gateway(gateway_factory, circuit={"consecutive_failures": 2})
    gw.demo.set_behavior("kimi", error_rate=1.0, error_status=500)
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        r = chat(http)
    assert r.status_code == 200 and r.headers["x-router-fallbacks"] == "2"
    assert gw.services.live.breaker("kimi").state == "open"  # both attempts were the backend's fault
    assert gw.services.live.inflight("kimi") == 0


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_parameter_the_route_refuses_moves_on_to_the_next_route(gateway_factory: Callable[..., Gateway],
                                                                   stream: bool) -> None:
    gw = _gateway(gateway_factory, circuit={"consecutive_failures": 1})
    gw.demo.set_behavior("kimi", refused_params=["top_k"])
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        r = chat(http, stream=stream, top_k=20)
        assert r.status_code == 200, r.text
        assert r.headers["x-router-route"] != "kimi:instant"
        assert r.headers["x-router-fallbacks"] == "1"
        if stream:
            assert sse_events(r.text)[-1] == "[DONE]"
        metrics = http.get("/metrics").text
    assert 'reason="unsupported_param"' in metrics
    assert 'router_upstream_errors_total{backend="kimi",kind="unsupported_param"} 1.0' in metrics
    assert gw.services.live.breaker("kimi").state == "closed"  # it answered: it is up
    assert gw.demo.stats("kimi")["rejected"] == 1  # not retried on the same route


def test_when_every_route_refuses_the_parameter_the_client_gets_the_upstreams_param_and_code(
        gateway_factory: Callable[..., Gateway]) -> None:
    gw = _gateway(gateway_factory)
    for name in ("kimi", "gpt"):
        gw.demo.set_behavior(name, refused_params=["top_k"])
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        r = chat(http, model="kimi:instant", top_k=20)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == "top_k" and error["code"] == "unsupported_parameter"
    assert error["type"] == "invalid_request_error"
