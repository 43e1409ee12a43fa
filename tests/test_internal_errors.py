"""A bug of ours still ends every request in the protocol's shape, and is counted.

The fault is injected at a seam the gateway already has (the classifier it is given), around the
real classifier: a prompt carrying the trigger makes classification raise, as a bug would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from router.demo import DemoUpstreams
from tests.conftest import Gateway, default_policy, start_gateway

TRIGGER = "__raise_in_classifier__"


class _FaultyClassifier:
    def __init__(self, real: Any) -> None:
        self._real = real

    def classify(self, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        if any(TRIGGER in str(m.get("content")) for m in messages):
            raise RuntimeError("injected fault")
        return self._real.classify(messages, **kwargs)


@pytest.fixture
def faulty_gateway(classifier: Any, demo: DemoUpstreams, tmp_path: Path) -> Iterator[Gateway]:
    gw = start_gateway(demo, default_policy(), tmp_path, classifier=_FaultyClassifier(classifier))
    yield gw
    gw.stop()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_an_internal_error_is_a_json_500_and_counted(faulty_gateway: Gateway, stream: bool) -> None:
    body = {"model": "auto", "stream": stream, "messages": [{"role": "user", "content": TRIGGER}]}
    with httpx.Client(base_url=faulty_gateway.url, timeout=30) as http:
        r = http.post("/v1/chat/completions", json=body)
        assert r.status_code == 500 and r.headers["content-type"].startswith("application/json")
        assert r.json()["error"]["type"] == "api_error"
        assert "injected" not in r.text  # never the exception's text
        metrics = http.get("/metrics").text
    assert 'router_requests_total{api="chat",mode="none",route="none",status="internal_error",task_type="none"} 1.0' \
        in metrics
