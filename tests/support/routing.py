"""Helpers for the routing tests: a policy tuned for quick tests, chat calls over HTTP, SSE parsing."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

QUESTION = "What is the capital of France?"
ALL_BACKENDS = ("kimi", "gpt", "gpt-mini", "claude")


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` deep-merged in (a new dict)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def fast_overrides(**extra: Any) -> dict[str, Any]:
    """Overrides for ``default_policy``: latency priors that match the demo upstreams, short
    timeouts, tiny backoffs, a circuit that opens after 3 failures and probes after 0.4 s, and an
    engine-metrics scrape every 50 ms — so fault tests finish in seconds."""
    base: dict[str, Any] = {
        "backends": {name: {"latency": {"ttft_ms": 30, "output_tokens_per_s": 400}, "timeout_s": 5}
                     for name in ALL_BACKENDS},
        "retry": {"attempts_per_route": 2, "backoff_base_ms": 5, "backoff_max_ms": 20, "max_retry_after_s": 0.2},
        "circuit": {"consecutive_failures": 3, "error_rate": 0.5, "window": 10, "open_s": 0.4,
                    "half_open_probes": 1},
        "engine_metrics": {"scrape_interval_s": 0.05, "scrape_timeout_s": 0.5},
    }
    return merge(base, extra)


def chat(http: httpx.Client, *, task: str | None = "simple", stream: bool = False, content: str = QUESTION,
         headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
    """One chat request (``model`` defaults to ``auto``); streams are read to the end."""
    payload: dict[str, Any] = {"model": "auto", "messages": [{"role": "user", "content": content}], **body}
    if stream:
        payload["stream"] = True
    sent = {"x-router-task-type": task} if task else {}
    sent.update(headers or {})
    response = http.post("/v1/chat/completions", json=payload, headers=sent)
    response.read()
    return response


def sse_events(text: str) -> list[Any]:
    """Parsed ``data:`` payloads of an SSE body; ``[DONE]`` as the string."""
    events: list[Any] = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            data = block[6:]
            events.append(data if data == "[DONE]" else orjson.loads(data))
    return events


def router_object(response: httpx.Response) -> dict[str, Any]:
    """The ``router`` object of a JSON answer or of a stream's last chunk."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        events = sse_events(response.text)
        assert events[-1] == "[DONE]", response.text[-500:]
        final = events[-2]
        assert "router" in final, final
        return dict(final["router"])
    return dict(response.json()["router"])


def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0, interval_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()
