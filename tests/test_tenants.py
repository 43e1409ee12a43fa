"""Tenants end to end: keys from a tenants file, limits, refusals in OpenAI's shape, over real HTTP.

Gateways are real (uvicorn, demo upstreams on loopback) and driven with the official SDK; the
shared state is in-process here (Redis is exercised in test_tenant_state.py and
test_tenants_redis.py).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import yaml

from router.observability.access_log import AccessLog
from router.tenants import manage
from tests.conftest import Gateway

HELLO = [{"role": "user", "content": "What is the capital of Peru?"}]


def tenants_gateway(factory: Callable[..., Gateway], tmp_path: Path, tenants: dict[str, Any],
                    **settings: Any) -> tuple[Gateway, dict[str, str], Path]:
    """A gateway with these tenants; returns it, a key per tenant, and the tenants file."""
    path = tmp_path / "tenants.yaml"
    path.write_text(yaml.safe_dump({"tenants": tenants}))
    keys = {name: manage.create_key(path, name).key for name in tenants}
    gw = factory(settings={"tenants_file": path, "tenants_reload_interval_s": 0.1, **settings})
    return gw, keys, path


def test_a_key_names_its_tenant_and_every_answer_carries_rate_limit_headers(
        gateway_factory: Callable[..., Gateway], tmp_path: Path) -> None:
    gw, keys, _ = tenants_gateway(gateway_factory, tmp_path, {"search": {"rpm": 50, "tpm": 100000}})
    raw = gw.client(api_key=keys["search"]).chat.completions.with_raw_response.create(model="auto", messages=HELLO)
    assert raw.status_code == 200
    assert raw.headers["x-ratelimit-limit-requests"] == "50"
    assert raw.headers["x-ratelimit-remaining-requests"] == "49"
    assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    assert raw.headers["x-ratelimit-limit-tokens"] == "100000"
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) < 100000
    stream = gw.client(api_key=keys["search"]).chat.completions.with_raw_response.create(
        model="auto", messages=HELLO, stream=True)
    assert stream.headers["x-ratelimit-remaining-requests"] == "48"
    list(stream.parse())
    with pytest.raises(openai.AuthenticationError):
        gw.client(api_key="mr-not-a-key").chat.completions.create(model="auto", messages=HELLO)


def test_requests_per_minute_429_rate_limit_exceeded_with_retry_after(
        gateway_factory: Callable[..., Gateway], tmp_path: Path) -> None:
    gw, keys, _ = tenants_gateway(gateway_factory, tmp_path, {"small": {"rpm": 3}, "big": {}})
    client = gw.client(api_key=keys["small"])
    for _ in range(3):
        client.chat.completions.create(model="auto", messages=HELLO)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="auto", messages=HELLO)
    err = refused.value
    assert err.status_code == 429 and err.code == "rate_limit_exceeded"
    assert 1 <= int(err.response.headers["retry-after"]) <= 60
    assert err.response.headers["x-ratelimit-remaining-requests"] == "0"
    # Another tenant is not affected.
    gw.client(api_key=keys["big"]).chat.completions.create(model="auto", messages=HELLO)
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert 'router_tenant_rejections_total{reason="rate_limit_requests",tenant="small"} 1.0' in metrics


def test_spent_budget_is_429_insufficient_quota(gateway_factory: Callable[..., Gateway], tmp_path: Path) -> None:
    gw, keys, _ = tenants_gateway(gateway_factory, tmp_path, {"thrifty": {"monthly_budget_usd": 0.05}})
    gw.demo.set_behavior("gpt", ttft_ms=0, tokens_per_s=0)  # no simulated pacing: the budget is under test
    client = gw.client(api_key=keys["thrifty"])
    spent = 0.0
    with pytest.raises(openai.RateLimitError) as refused:
        for _ in range(200):
            raw = client.chat.completions.with_raw_response.create(model="gpt:default", messages=HELLO)
            spent += float(raw.headers["x-router-cost-usd"])
    assert refused.value.code == "insufficient_quota"
    assert refused.value.body["type"] == "insufficient_quota"  # type: ignore[index]
    assert 0 < spent <= 0.05 + 1e-12  # reservations: never past the budget
    me = httpx.get(f"{gw.base_url}/router/tenants/me", headers={"Authorization": f"Bearer {keys['thrifty']}"}).json()
    monthly = me["usage"][0]["monthly_budget_usd"]
    assert monthly["spent"] == pytest.approx(spent, rel=1e-6) and monthly["reserved"] == 0
    assert me["tenant"] == "thrifty" and me["shared_state"] == "memory"


def test_self_hosted_spend_can_be_exempt(gateway_factory: Callable[..., Gateway], tmp_path: Path) -> None:
    gw, keys, _ = tenants_gateway(gateway_factory, tmp_path, {
        "local": {"monthly_budget_usd": 0.0, "self_hosted_spend": "exempt"},
        "counted": {"monthly_budget_usd": 0.0}})
    raw = gw.client(api_key=keys["local"]).chat.completions.with_raw_response.create(
        model="kimi:instant", messages=HELLO)
    assert raw.headers["x-router-route"] == "kimi:instant" and float(raw.headers["x-router-cost-usd"]) > 0
    # auto: the vendor routes are dropped, the self-hosted one serves
    raw = gw.client(api_key=keys["local"]).chat.completions.with_raw_response.create(model="auto", messages=HELLO)
    assert raw.headers["x-router-route"].startswith("kimi:")
    with pytest.raises(openai.RateLimitError) as refused:
        gw.client(api_key=keys["counted"]).chat.completions.create(model="kimi:instant", messages=HELLO)
    assert refused.value.code == "insufficient_quota"


def test_routes_modes_and_models_a_key_may_not_use_are_403(
        gateway_factory: Callable[..., Gateway], tmp_path: Path) -> None:
    gw, keys, _ = tenants_gateway(gateway_factory, tmp_path, {
        "narrow": {"allowed_routes": ["kimi"], "allowed_modes": ["instant"]},
        "models": {"allowed_models": ["auto"]}})
    client = gw.client(api_key=keys["narrow"])
    for model in ("gpt:default", "kimi:thinking", "auto:thinking"):
        with pytest.raises(openai.PermissionDeniedError) as refused:
            client.chat.completions.create(model=model, messages=HELLO)
        assert refused.value.code == "permission_denied"
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=HELLO)
    assert raw.headers["x-router-route"] == "kimi:instant"
    with pytest.raises(openai.PermissionDeniedError):
        gw.client(api_key=keys["models"]).chat.completions.create(model="kimi:instant", messages=HELLO)


def test_the_ceiling_is_the_strictest_of_tenant_policy_header_and_body(
        gateway_factory: Callable[..., Gateway], tmp_path: Path) -> None:
    gw, keys, _ = tenants_gateway(gateway_factory, tmp_path, {
        "capped": {"max_cost_usd": {"default": 0.01, "max": 0.02}, "latency_budget_ms": {"max": 20000}}})
    client = gw.client(api_key=keys["capped"])
    r = client.chat.completions.create(model="auto", messages=HELLO)
    assert r.router["max_cost_usd"] == 0.01 and r.router["latency_budget_ms"] == 20000  # type: ignore[attr-defined]
    r = client.chat.completions.create(model="auto", messages=HELLO, extra_body={"router": {"max_cost_usd": 0.5}})
    assert r.router["max_cost_usd"] == 0.02  # type: ignore[attr-defined]
    r = client.chat.completions.create(model="auto", messages=HELLO, extra_headers={"X-Router-Max-Cost": "0.005"})
    assert r.router["max_cost_usd"] == 0.005  # type: ignore[attr-defined]


def test_a_revoked_key_is_refused_within_one_reload_interval(
        gateway_factory: Callable[..., Gateway], tmp_path: Path) -> None:
    gw, keys, path = tenants_gateway(gateway_factory, tmp_path, {"team": {}})
    client = gw.client(api_key=keys["team"])
    client.chat.completions.create(model="auto", messages=HELLO)
    key_id = manage.list_keys(path)[0]["id"]
    manage.revoke_key(path, key_id)
    revoked_at = time.monotonic()
    while True:
        try:
            client.chat.completions.create(model="auto", messages=HELLO)
        except openai.AuthenticationError:
            break
        assert time.monotonic() - revoked_at < 0.1 + 1.0, "still accepted well past one reload interval"
        time.sleep(0.02)
    # Rotation: the new key works, the old one does not.
    rotated = manage.create_key(path, "team")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            gw.client(api_key=rotated.key).chat.completions.create(model="auto", messages=HELLO)
            break
        except openai.AuthenticationError:
            time.sleep(0.02)
    else:
        pytest.fail("a new key was not accepted after a reload")


def test_legacy_client_keys_are_the_default_tenant(gateway_factory: Callable[..., Gateway], tmp_path: Path) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text(yaml.safe_dump({"tenants": {"default": {"rpm": 2}}}))
    gw = gateway_factory(settings={"client_keys": "legacy-key-1", "tenants_file": path})
    client = gw.client(api_key="legacy-key-1")
    client.chat.completions.create(model="auto", messages=HELLO)
    client.chat.completions.create(model="auto", messages=HELLO)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="auto", messages=HELLO)
    me = httpx.get(f"{gw.base_url}/router/tenants/me", headers={"Authorization": "Bearer legacy-key-1"}).json()
    assert me["tenant"] == "default" and me["usage"][0]["requests_per_minute"]["remaining"] == 0


def test_tenant_in_the_access_log_and_bounded_metric_labels(
        gateway_factory: Callable[..., Gateway], tmp_path: Path) -> None:
    gw, keys, _ = tenants_gateway(gateway_factory, tmp_path, {f"team{i}": {} for i in range(3)},
                                  tenant_label_cap=3)  # "default" always takes one
    access = io.StringIO()
    old = gw.services.access_log
    gw.services.access_log = gw.services.pipeline.accounting.access_log = AccessLog(access)
    old.close()
    for name in ("team0", "team1", "team2"):
        gw.client(api_key=keys[name]).chat.completions.create(model="auto", messages=HELLO)
    gw.services.access_log.close()
    lines = [orjson.loads(line) for line in access.getvalue().splitlines()]
    assert [line["tenant"] for line in lines] == ["team0", "team1", "team2"]
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert 'router_tenant_requests_total{status="ok",tenant="team0"} 1.0' in metrics
    assert 'router_tenant_requests_total{status="ok",tenant="other"} 1.0' in metrics  # team2: past the cap
    assert 'tenant="team2"' not in metrics
