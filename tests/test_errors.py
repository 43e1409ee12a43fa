"""Every error class in OpenAI's shape, with the right status — never a stack trace or a 500 for a
client mistake."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Gateway, default_policy

HELLO = [{"role": "user", "content": "hello"}]


def _assert_openai_error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"] and "Traceback" not in body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize(("payload", "param"), [
    ({"model": "auto"}, "messages"),
    ({"model": "auto", "messages": []}, "messages"),
    ({"model": "auto", "messages": "hi"}, "messages"),
    ({"messages": HELLO}, "model"),
    ({"model": "auto", "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
    ({"model": "auto", "messages": HELLO, "temperature": 5}, "temperature"),
    ({"model": "auto", "messages": HELLO, "stream": "yes please"}, "stream"),
    ({"model": "auto", "messages": HELLO, "tools": [{"type": "function"}]}, "tools"),
    ({"model": "auto", "messages": HELLO, "router": {"max_cost_usd": -1}}, "router.max_cost_usd"),
    ({"model": "auto", "messages": HELLO, "router": {"mode": "turbo"}}, "router.mode"),
    ({"model": "auto", "messages": HELLO, "router": {"colour": "red"}}, "router.colour"),
])
def test_schema_errors_are_400_invalid_request(gateway: Gateway, payload: dict[str, Any], param: str) -> None:
    resp = httpx.post(f"{gateway.base_url}/chat/completions", json=payload, timeout=10)
    error = _assert_openai_error(resp, 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"", b"\xff\xfe"])
def test_malformed_json_is_400(gateway: Gateway, body: bytes) -> None:
    resp = httpx.post(f"{gateway.base_url}/chat/completions", content=body,
                      headers={"content-type": "application/json"}, timeout=10)
    assert _assert_openai_error(resp, 400)["type"] == "invalid_request_error"


@pytest.mark.parametrize(("header", "value"), [
    ("X-Router-Max-Cost", "cheap"), ("X-Router-Max-Cost", "-2"), ("X-Router-Latency-Budget", "nan"),
    ("X-Router-Mode", "turbo"), ("X-Router-Task-Type", "poetry"),
])
def test_bad_control_headers_are_400(gateway: Gateway, header: str, value: str) -> None:
    resp = httpx.post(f"{gateway.base_url}/chat/completions", json={"model": "auto", "messages": HELLO},
                      headers={header: value}, timeout=10)
    error = _assert_openai_error(resp, 400)
    assert header in error["message"] or header == error["param"]


def test_unknown_model_is_404_model_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-9-ultra", messages=HELLO)  # type: ignore[arg-type]
    assert info.value.code == "model_not_found"
    assert "auto" in info.value.message


def test_unknown_path_and_method(gateway: Gateway) -> None:
    _assert_openai_error(httpx.get(f"{gateway.base_url}/nope", timeout=10), 404)
    _assert_openai_error(httpx.get(f"{gateway.base_url}/chat/completions", timeout=10), 405)


def test_body_over_the_limit_is_413(gateway_factory: Any) -> None:
    gw: Gateway = gateway_factory(settings={"max_body_bytes": 2048})
    big = {"model": "auto", "messages": [{"role": "user", "content": "x" * 5000}]}
    _assert_openai_error(httpx.post(f"{gw.base_url}/chat/completions", json=big, timeout=10), 413,
                         "request_too_large")

    def chunks() -> Any:  # no content-length: the limit still holds while streaming the body in
        yield b'{"model": "auto", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}]}'

    resp = httpx.post(f"{gw.base_url}/chat/completions", content=chunks(),
                      headers={"content-type": "application/json"}, timeout=10)
    _assert_openai_error(resp, 413, "request_too_large")


def test_every_route_rate_limited_is_429_with_retry_after(gateway_factory: Any) -> None:
    gw: Gateway = gateway_factory(default_policy(retry={"attempts_per_route": 1}))
    for name in ("kimi", "gpt", "claude"):
        gw.demo.set_behavior(name, rate_limit_rate=1.0, retry_after_s=7)
    resp = httpx.post(f"{gw.base_url}/chat/completions", json={"model": "auto", "messages": HELLO}, timeout=20)
    error = _assert_openai_error(resp, 429, "rate_limit_exceeded")
    assert error["type"] == "rate_limit_error"
    assert int(resp.headers["retry-after"]) >= 1


def test_every_route_failing_is_502_upstream_error(gateway_factory: Any) -> None:
    gw: Gateway = gateway_factory(default_policy(retry={"attempts_per_route": 1}))
    for name in ("kimi", "gpt", "claude"):
        gw.demo.set_behavior(name, error_rate=1.0, error_status=503)
    resp = httpx.post(f"{gw.base_url}/chat/completions", json={"model": "auto", "messages": HELLO}, timeout=20)
    error = _assert_openai_error(resp, 502, "upstream_error")
    assert "kimi" in error["message"]
    assert resp.headers["x-router-request-id"].startswith("rtr-"), "errors can be traced to their log line"
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert 'router_requests_total{api="chat",mode="instant",route="kimi:instant",status="upstream_error"' in metrics
    # Streaming requests fail the same way when nothing was sent yet.
    resp = httpx.post(f"{gw.base_url}/chat/completions", timeout=20,
                      json={"model": "auto", "messages": HELLO, "stream": True})
    _assert_openai_error(resp, 502, "upstream_error")


def test_upstream_timeout_is_504(gateway_factory: Any) -> None:
    policy = default_policy(retry={"attempts_per_route": 1}, backends={"kimi": {"timeout_s": 0.5}})
    gw: Gateway = gateway_factory(policy)
    gw.demo.set_behavior("kimi", timeout_rate=1.0, hang_s=30)
    resp = httpx.post(f"{gw.base_url}/chat/completions", json={"model": "kimi:instant", "messages": HELLO},
                      timeout=20)
    _assert_openai_error(resp, 504, "upstream_timeout")


def test_upstream_rejecting_the_request_is_a_client_error(gateway_factory: Any) -> None:
    gw: Gateway = gateway_factory()
    gw.demo.set_behavior("kimi", error_rate=1.0, error_status=400)
    resp = httpx.post(f"{gw.base_url}/chat/completions", json={"model": "kimi:instant", "messages": HELLO},
                      timeout=20)
    _assert_openai_error(resp, 400)


def test_impossible_ceiling_is_route_infeasible_naming_candidates(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="auto", messages=HELLO,
                                       extra_headers={"X-Router-Max-Cost": "0.0000001"})
    assert info.value.code == "route_infeasible"
    assert info.value.response.headers["x-router-request-id"].startswith("rtr-")
    for route in ("kimi:instant", "gpt:default"):
        assert route in info.value.message
    assert "ceiling" in info.value.message
