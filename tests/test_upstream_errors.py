"""One mapping of an upstream's failures for every native client (relay.py, anthropic.py):
``status_error`` for a non-200 answer, ``transport_error`` for a timeout or a broken connection."""

from __future__ import annotations

import aiohttp
import orjson
import pytest

from router.dispatch.upstream import status_error, transport_error

OPENAI_400 = orjson.dumps({"error": {"message": "Unsupported value: 'temperature'", "param": "temperature",
                                     "code": "unsupported_value"}})
ANTHROPIC_400 = orjson.dumps({"type": "error", "error": {"type": "invalid_request_error",
                                                         "message": "temperature: Input should be <= 1"}})


def test_rate_limits_keep_their_retry_after() -> None:
    err = status_error(429, b'{"error": {"message": "slow down"}}', {"retry-after": "2.5"})
    assert (err.kind, err.retry_after_s, err.message, err.status) == ("rate_limited", 2.5, "slow down", 429)
    assert status_error(429, b"{}", {"retry-after": "soon"}).retry_after_s is None


@pytest.mark.parametrize("status", [500, 502, 503, 529])
def test_server_errors_are_5xx(status: int) -> None:
    assert status_error(status, ANTHROPIC_400, {}).kind == "http_5xx"


def test_a_4xx_is_a_refused_parameter_only_where_the_body_names_one() -> None:
    openai = status_error(400, OPENAI_400, {})
    assert (openai.kind, openai.param, openai.code) == ("unsupported_param", "temperature", "unsupported_value")
    anthropic = status_error(400, ANTHROPIC_400, {}, names_params=False)
    assert (anthropic.kind, anthropic.message, anthropic.param) == ("http_4xx", "temperature: Input should be <= 1",
                                                                    None)
    assert anthropic.client_fault


def test_transport_failures_before_and_after_the_stream_started() -> None:
    assert (transport_error(TimeoutError(), "claude").kind, transport_error(TimeoutError(), "claude").message) == \
        ("timeout", "claude did not answer in time")
    timeout = aiohttp.ServerTimeoutError("read")
    assert transport_error(timeout, "kimi", stream=True).message == "kimi stopped sending"
    assert transport_error(timeout, "kimi", stream=True).kind == "timeout"
    broken = aiohttp.ClientConnectionError()
    assert (transport_error(broken, "gpt").kind, transport_error(broken, "gpt").message) == \
        ("connection", "gpt: ClientConnectionError")
    assert transport_error(broken, "gpt", stream=True, started=True).kind == "mid_stream"
    assert transport_error(timeout, "gpt", stream=True, started=True).kind == "mid_stream"
