"""Models list, status, health, readiness, metrics, and client authentication."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Gateway


def test_models_lists_virtual_models_routes_and_aliases(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"auto", "auto:instant", "auto:thinking", "auto:agent", "auto:swarm"} <= ids
    assert {"kimi:instant", "kimi:thinking", "kimi:agent", "gpt:default", "claude:default"} <= ids
    assert "kimi-k2.5" in ids
    assert client.models.retrieve("kimi:thinking").id == "kimi:thinking"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-9")


def test_health_ready_and_metrics(gateway: Gateway, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="kimi:instant", messages=[{"role": "user", "content": "hi"}])
    assert httpx.get(f"{gateway.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.url}/readyz")
    assert ready.status_code == 200 and "kimi" in ready.json()["backends_up"]
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'router_requests_total{api="chat",mode="instant",route="kimi:instant",status="ok",task_type=' in metrics


def test_router_status(gateway: Gateway, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="kimi:thinking", messages=[{"role": "user", "content": "hi"}])
    status = httpx.get(f"{gateway.base_url}/router/status").json()
    kimi = status["backends"]["kimi"]
    assert kimi["circuit"] == "closed" and kimi["enabled"] is True
    assert kimi["routes"]["kimi:thinking"]["samples"] >= 1
    assert status["policy"]["name"] == "default"


@pytest.fixture
def secured(gateway_factory: Any, tmp_path: Path) -> Gateway:
    keys = tmp_path / "keys"
    keys.write_text("# team keys\nkey-from-file\n")
    gw: Gateway = gateway_factory(settings={"client_keys": "key-a,key-b", "client_keys_file": keys})
    return gw


def test_auth_required_when_keys_configured(secured: Gateway) -> None:
    messages: Any = [{"role": "user", "content": "hi"}]
    for key in ("key-a", "key-b", "key-from-file"):
        secured.client(api_key=key).chat.completions.create(model="kimi:instant", messages=messages)
    with pytest.raises(openai.AuthenticationError) as info:
        secured.client(api_key="wrong").chat.completions.create(model="kimi:instant", messages=messages)
    assert info.value.status_code == 401 and "wrong" not in info.value.message
    resp = httpx.post(f"{secured.base_url}/chat/completions", json={"model": "auto", "messages": messages})
    assert resp.status_code == 401 and resp.json()["error"]["type"] == "authentication_error"
    assert httpx.get(f"{secured.base_url}/models").status_code == 401
    # Health, readiness and metrics stay open.
    for path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(f"{secured.url}{path}").status_code == 200


def test_auth_off_accepts_any_key(client: openai.OpenAI) -> None:
    client.chat.completions.create(model="kimi:instant", messages=[{"role": "user", "content": "hi"}])
