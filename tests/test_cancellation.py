"""A client that goes away cancels the upstream call; an upstream that dies mid-stream gives one
error chunk and then [DONE]."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway


def _wait_for(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_disconnect_cancels_non_streaming_upstream_call(gateway_factory: Any) -> None:
    gw: Gateway = gateway_factory()
    gw.demo.set_behavior("kimi", ttft_ms=3000)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gw.base_url}/chat/completions", timeout=httpx.Timeout(10, read=0.5),
                   json={"model": "kimi:instant", "messages": [{"role": "user", "content": "slow one"}]})
    assert _wait_for(lambda: gw.demo.stats("kimi")["cancelled"] >= 1), gw.demo.stats("kimi")
    assert _wait_for(lambda: gw.services.live.inflight("kimi") == 0)
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert 'route="kimi:instant",status="cancelled"' in metrics, "a cancelled request is still counted"


def test_disconnect_cancels_streaming_upstream_call(gateway_factory: Any) -> None:
    gw: Gateway = gateway_factory()
    gw.demo.set_behavior("kimi", tokens_per_s=5)  # a long, slow stream
    with httpx.stream("POST", f"{gw.base_url}/chat/completions", timeout=10,
                      json={"model": "kimi:instant", "stream": True,
                            "messages": [{"role": "user", "content": "tell me a long story"}]}) as resp:
        lines = resp.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))
    assert _wait_for(lambda: gw.demo.stats("kimi")["cancelled"] >= 1), gw.demo.stats("kimi")
    assert _wait_for(lambda: gw.services.live.inflight("kimi") == 0)


def test_upstream_failure_mid_stream_is_one_error_chunk_then_done(gateway_factory: Any) -> None:
    gw: Gateway = gateway_factory()
    gw.demo.set_behavior("kimi", fail_after_chunks=3)
    with httpx.stream("POST", f"{gw.base_url}/chat/completions", timeout=10,
                      json={"model": "kimi:instant", "stream": True,
                            "messages": [{"role": "user", "content": "a story please"}]}) as resp:
        assert resp.status_code == 200
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    payloads = [json.loads(e) for e in events[:-1]]
    errors = [p for p in payloads if "error" in p]
    assert len(errors) == 1 and payloads[-1] is errors[0]
    assert errors[0]["error"]["type"] == "upstream_error"
    assert any(p.get("choices") for p in payloads[:-1]), "content was streamed before the failure"


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/messages", {"model": "kimi:instant", "max_tokens": 512, "stream": True,
                      "messages": [{"role": "user", "content": "a story please"}]}),
    ("/v1/responses", {"model": "kimi:instant", "stream": True, "input": "a story please"})])
def test_every_door_ends_a_broken_stream_in_its_own_shape(gateway_factory: Any, path: str,
                                                          body: dict[str, Any]) -> None:
    gw: Gateway = gateway_factory()
    gw.demo.set_behavior("kimi", fail_after_chunks=3)
    with httpx.stream("POST", f"{gw.url}{path}", json=body, timeout=10) as resp:
        assert resp.status_code == 200
        raw = b"".join(resp.iter_bytes())
    frames = [f for f in raw.split(b"\n\n") if f]
    last = json.loads(frames[-1].split(b"\n", 1)[1].removeprefix(b"data: "))
    if path == "/v1/messages":  # Anthropic: an error event, nothing after it
        assert last["type"] == "error" and last["error"]["type"] == "api_error"
        assert b"content_block_delta" in raw and b"message_stop" not in raw
    else:  # Responses: response.failed is the terminal event
        assert last["type"] == "response.failed" and last["response"]["status"] == "failed"
        assert b"response.output_text.delta" in raw and b"response.completed" not in raw
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert 'route="kimi:instant",status="upstream_error"' in metrics


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/messages", {"model": "kimi:instant", "max_tokens": 2048, "stream": True,
                      "messages": [{"role": "user", "content": "tell me a long story"}]}),
    ("/v1/responses", {"model": "kimi:instant", "stream": True, "input": "tell me a long story"})])
def test_every_door_cancels_the_upstream_when_the_client_leaves(gateway_factory: Any, path: str,
                                                                body: dict[str, Any]) -> None:
    gw: Gateway = gateway_factory()
    gw.demo.set_behavior("kimi", tokens_per_s=5)  # a long, slow stream
    with httpx.stream("POST", f"{gw.url}{path}", json=body, timeout=10) as resp:
        assert next(line for line in resp.iter_lines() if line.startswith("data: "))
    assert _wait_for(lambda: gw.demo.stats("kimi")["cancelled"] >= 1), gw.demo.stats("kimi")
    assert _wait_for(lambda: gw.services.live.inflight("kimi") == 0)
