"""Client input the gateway must refuse in OpenAI's error shape (400/413), never with a 500."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from router import protocol
from tests.conftest import Gateway

USER = {"role": "user", "content": "hi"}


class _Nested:
    """A value nested ``depth`` objects deep, spliced in as raw JSON (deeper than orjson writes)."""

    def __init__(self, depth: int) -> None:
        self.raw = b'{"x":' * depth + b'"leaf"' + b"}" * depth


def _encode(body: dict[str, Any]) -> bytes:
    spliced: list[bytes] = []

    def default(value: Any) -> Any:
        if isinstance(value, _Nested):
            spliced.append(value.raw)
            return f"@@{len(spliced) - 1}@@"
        raise TypeError

    raw = orjson.dumps(body, default=default)
    for i, piece in enumerate(spliced):
        raw = raw.replace(f'"@@{i}@@"'.encode(), piece)
    return raw


def _nested(depth: int) -> Any:
    return _Nested(depth)


# (extra body fields, expected status, expected param)
BAD: dict[str, tuple[dict[str, Any], int, str | None]] = {
    "stream-string-false": ({"stream": "false"}, 400, "stream"),
    "stream-string-0": ({"stream": "0"}, 400, "stream"),
    "temperature-true": ({"temperature": True}, 400, "temperature"),
    "temperature-string": ({"temperature": "0.5"}, 400, "temperature"),
    "text-part-without-text": ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, 400,
                               "messages.0.content.0.text"),
    "image-part-without-url": ({"messages": [{"role": "user", "content": [{"type": "image_url",
                                                                           "image_url": {}}]}]},
                               400, "messages.0.content.0.image_url"),
    "tool-type-number": ({"tools": [{"type": 5, "function": {"name": "f"}}]}, 400, "tools"),
    "max-cost-infinity": ({"router": {"max_cost_usd": "Infinity"}}, 400, "router.max_cost_usd"),
    "latency-nan": ({"router": {"latency_budget_ms": "NaN"}}, 400, "router.latency_budget_ms"),
    "max-tokens-true": ({"max_tokens": True}, 400, "max_tokens"),
    "chat-template-kwargs-string": ({"chat_template_kwargs": "thinking"}, 400, "chat_template_kwargs"),
    "chat-template-kwargs-list": ({"chat_template_kwargs": [1]}, 400, "chat_template_kwargs"),
    "nested-300-in-a-message": ({"messages": [{**USER, "extra": _nested(300)}]}, 400, None),
    "nested-1000-in-tools": ({"tools": [{"type": "function", "function": {"name": "f",
                                                                          "parameters": _nested(1000)}}]},
                             400, None),
    "too-many-parts": ({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}] * 5000}]},
                       413, "messages"),
    "too-many-messages": ({"messages": [USER] * 3000}, 413, "messages"),
}


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/route"])
@pytest.mark.parametrize("case", list(BAD))
def test_bad_client_input_gets_a_protocol_shaped_4xx(gateway: Gateway, case: str, path: str) -> None:
    extra, status, param = BAD[case]
    body = {"model": "auto", "messages": [USER], **extra}
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        r = http.post(path, content=_encode(body), headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_a_false_stream_is_answered_as_json(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        r = http.post("/v1/chat/completions", json={"model": "auto", "messages": [USER], "stream": False})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")


def test_the_nesting_check_is_exact_and_cheap_for_flat_bodies() -> None:
    limit = protocol.BodyLimits().max_nesting
    ok = {"model": "auto", "messages": [USER], "x": _nested(limit - 2)}
    protocol.parse_json_body(_encode(ok))
    deep = {"model": "auto", "messages": [USER], "x": _nested(limit)}
    with pytest.raises(protocol.InvalidRequest):
        protocol.parse_json_body(_encode(deep))
    # Many brackets but flat: allowed (the exact walk finds nothing).
    flat = {"model": "auto", "messages": [USER], "x": [[1]] * 1000}
    protocol.parse_json_body(orjson.dumps(flat))
