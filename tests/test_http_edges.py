"""Small HTTP edges: 405 says Allow, no redirect built from Host, repeated Authorization refused
the same way on every endpoint."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.conftest import Gateway

BODY = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(("method", "path", "allow"), [("GET", "/v1/chat/completions", "POST"),
                                                       ("POST", "/v1/models", "GET"),
                                                       ("DELETE", "/v1/route", "POST")])
def test_405_names_the_allowed_methods(gateway: Gateway, method: str, path: str, allow: str) -> None:
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        r = http.request(method, path)
    assert r.status_code == 405
    assert allow in r.headers["allow"]
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_a_trailing_slash_is_not_redirected_to_the_host_header(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, timeout=10, follow_redirects=False) as http:
        r = http.get("/v1/models/", headers={"host": "evil.example"})
    assert r.status_code == 404 and "location" not in r.headers
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/chat/completions"), ("POST", "/v1/route"),
                                              ("GET", "/v1/router/status"), ("GET", "/v1/models")])
def test_a_repeated_authorization_header_is_refused_everywhere(gateway_factory: Callable[..., Gateway],
                                                               method: str, path: str) -> None:
    gw = gateway_factory(settings={"client_keys": "good-key"})
    for order in (["Bearer bad", "Bearer good-key"], ["Bearer good-key", "Bearer bad"]):
        headers = [("authorization", value) for value in order]
        with httpx.Client(base_url=gw.url, timeout=10) as http:
            r = http.request(method, path, headers=headers, json=BODY if method == "POST" else None)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "authorization"
