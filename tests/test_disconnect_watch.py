"""A client that leaves cancels its request's work on both ways the front door learns it: the
protocol's call (``server.DisconnectWatch``, what ``router serve`` runs) and, under any other ASGI
server, a watcher task in ``receive()``. A stream that ends normally is not cancelled by its own end."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway

# None: the gateway's own protocol (the conftest default); "httptools": uvicorn's, no watch offered.
PROTOCOLS = [pytest.param(None, id="disconnect-watch"), pytest.param("httptools", id="receive-watcher")]


def _wait_for(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _statuses(gw: Gateway) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in httpx.get(f"{gw.url}/metrics").text.splitlines():
        if line.startswith("router_requests_total{") and 'route="kimi:instant"' in line:
            status = line.split('status="', 1)[1].split('"', 1)[0]
            out[status] = out.get(status, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


@pytest.mark.parametrize("http", PROTOCOLS)
def test_a_client_that_leaves_mid_answer_cancels_the_upstream_call(gateway_factory: Any, http: Any) -> None:
    gw: Gateway = gateway_factory(http=http)
    gw.demo.set_behavior("kimi", ttft_ms=3000)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gw.base_url}/chat/completions", timeout=httpx.Timeout(10, read=0.5),
                   json={"model": "kimi:instant", "messages": [{"role": "user", "content": "slow one"}]})
    assert _wait_for(lambda: gw.demo.stats("kimi")["cancelled"] >= 1), gw.demo.stats("kimi")
    assert _wait_for(lambda: gw.services.live.inflight("kimi") == 0)
    assert _wait_for(lambda: _statuses(gw).get("cancelled") == 1.0), _statuses(gw)


@pytest.mark.parametrize("http", PROTOCOLS)
def test_a_client_that_leaves_mid_stream_cancels_the_upstream_stream(gateway_factory: Any, http: Any) -> None:
    gw: Gateway = gateway_factory(http=http)
    gw.demo.set_behavior("kimi", tokens_per_s=5)  # a long, slow stream
    with httpx.stream("POST", f"{gw.base_url}/chat/completions", timeout=10,
                      json={"model": "kimi:instant", "stream": True,
                            "messages": [{"role": "user", "content": "tell me a long story"}]}) as resp:
        assert next(line for line in resp.iter_lines() if line.startswith("data: "))
    assert _wait_for(lambda: gw.demo.stats("kimi")["cancelled"] >= 1), gw.demo.stats("kimi")
    assert _wait_for(lambda: gw.services.live.inflight("kimi") == 0)


@pytest.mark.parametrize("http", PROTOCOLS)
def test_answers_that_complete_are_counted_once_as_ok(gateway_factory: Any, http: Any) -> None:
    gw: Gateway = gateway_factory(http=http)
    client = gw.client()
    with httpx.Client(timeout=10) as keep_alive:  # several requests on one connection
        for _ in range(3):
            resp = keep_alive.post(f"{gw.base_url}/chat/completions",
                                   json={"model": "kimi:instant", "messages": [{"role": "user", "content": "hi"}]})
            assert resp.status_code == 200
    for _ in range(3):
        chunks = list(client.chat.completions.create(model="kimi:instant", stream=True,
                                                     messages=[{"role": "user", "content": "hi"}]))
        assert chunks[-1].model_extra and "router" in chunks[-1].model_extra
    assert _wait_for(lambda: _statuses(gw) == {"ok": 6.0}), _statuses(gw)
    assert gw.demo.stats("kimi")["cancelled"] == 0


def test_a_request_leaves_no_reference_cycle_behind(gateway_factory: Any) -> None:
    """Everything a request builds is freed by reference counting when it ends: a cycle per request
    (the watch and the request's cycle holding each other, as a first version of DisconnectWatch
    did) left ~12 objects per request to the collector — a young collection every ~800 requests,
    ~3-5 ms each on the event loop."""
    import gc

    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    from router.exchange import Routed
    from router.server import DisconnectWatch, HeadWithBody

    gw: Gateway = gateway_factory()
    client = gw.client()
    ask = {"model": "kimi:instant", "messages": [{"role": "user", "content": "hi"}]}
    client.chat.completions.create(**ask)  # warm: first-request caches are not per-request garbage
    gc.collect()
    flags = gc.get_debug()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds unreachable is kept in gc.garbage, to count
    try:
        for _ in range(5):
            client.chat.completions.create(**ask)
            list(client.chat.completions.create(stream=True, **ask))
        gc.collect()
        ours = (RequestResponseCycle, DisconnectWatch, HeadWithBody, Routed)
        left = [type(o).__name__ for o in gc.garbage if isinstance(o, ours)]
    finally:
        gc.set_debug(flags)
        gc.garbage.clear()
    assert left == [], left
