"""The server under hostile connections and at shutdown, with a gateway in its own process.

- 1,000 idle sockets under a 1,024-descriptor limit: normal requests are still served, and the idle
  ones are reaped after the header timeout;
- headers that trickle in, and a body shorter than announced, are cut after their timeouts;
- a malformed header (a NUL byte) gets a 400 in OpenAI's JSON shape;
- SIGTERM with requests still running past the grace period: each client gets an ending in its
  protocol's shape (503 JSON, or an error chunk and [DONE]).
"""

from __future__ import annotations

import contextlib
import resource
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from router.demo import DemoUpstreams
from router.services import demo_env
from tests.support.routing import sse_events
from tests.support.subprocess_gateway import GatewayProcess

IDLE = 1000
BODY = {"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
SIMPLE = {"x-router-task-type": "simple"}


@pytest.fixture
def limited_gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(env={"ROUTER_HEADER_TIMEOUT_S": "3", "ROUTER_BODY_TIMEOUT_S": "2"},
                        args=["--demo"], nofile=1024, log_path=tmp_path / "gateway.log")
    yield gw
    gw.stop()


@contextlib.contextmanager
def _more_descriptors(n: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, n))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _open_idle(port: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        sockets.append(s)
    return sockets


def _closed_by_peer(s: socket.socket) -> bool:
    """Did the server close it (EOF, a reset, or a refusal it wrote before closing)?"""
    s.settimeout(0.05)
    try:
        s.recv(1024)
    except TimeoutError:
        return False  # still open, nothing said
    except OSError:
        pass  # reset
    return True


def test_a_thousand_idle_sockets_under_1024_descriptors_do_not_stop_normal_requests(
        limited_gateway: GatewayProcess) -> None:
    with _more_descriptors(IDLE + 256):
        idle = _open_idle(limited_gateway.port, IDLE)
        try:
            with httpx.Client(base_url=limited_gateway.url, timeout=10) as http:
                for _ in range(10):
                    r = http.post("/v1/chat/completions", json=BODY, headers=SIMPLE)
                    assert r.status_code == 200, r.text
            time.sleep(3.0)  # the header timeout: every idle socket is reaped
            assert _reaped(idle, within_s=10) == IDLE
            with httpx.Client(base_url=limited_gateway.url, timeout=10) as http:
                assert http.post("/v1/chat/completions", json=BODY, headers=SIMPLE).status_code == 200
        finally:
            for s in idle:
                s.close()


def _reaped(sockets: list[socket.socket], within_s: float) -> int:
    """How many of ``sockets`` the server closes within ``within_s`` (polled: on 2 busy cores the
    gateway may close a thousand sockets well after the timeout it arms for each)."""
    with selectors.DefaultSelector() as waiting:  # epoll: a thousand descriptors, past select()'s 1,024
        for s in sockets:
            waiting.register(s, selectors.EVENT_READ)
        closed = 0
        deadline = time.monotonic() + within_s
        while closed < len(sockets) and time.monotonic() < deadline:
            for key, _ in waiting.select(timeout=0.1):
                waiting.unregister(key.fileobj)
                closed += _closed_by_peer(key.fileobj)  # type: ignore[arg-type]
        return closed


def _raw_exchange(port: int, data: bytes, wait_s: float) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as s:
        s.sendall(data)
        chunks = []
        with contextlib.suppress(TimeoutError):
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def test_trickling_headers_are_cut_after_the_header_timeout(limited_gateway: GatewayProcess) -> None:
    started = time.monotonic()
    answer = _raw_exchange(limited_gateway.port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n", 10)
    assert answer == b"" and 2.5 < time.monotonic() - started < 8  # closed, not held


def test_a_short_body_gets_a_408_in_openai_shape(limited_gateway: GatewayProcess) -> None:
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 100\r\n\r\n")
    answer = _raw_exchange(limited_gateway.port, head + b'{"model":', 10)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"


def test_a_nul_byte_in_a_header_gets_a_json_400(limited_gateway: GatewayProcess) -> None:
    answer = _raw_exchange(limited_gateway.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nx-a: b\x00c\r\n\r\n", 5)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    head, body = answer.split(b"\r\n\r\n", 1)
    assert b"content-type: application/json" in head.lower()
    assert orjson.loads(body)["error"]["type"] == "invalid_request_error"


def test_sigterm_ends_every_request_in_flight_in_its_protocols_shape(tmp_path: Path) -> None:
    with DemoUpstreams() as demo:
        for name in demo.names:  # JSON answers hang; streams trickle, far past the grace period
            demo.set_behavior(name, ttft_ms=30_000, tokens_per_s=2)
        gw = GatewayProcess(env={**demo_env(demo), "ROUTER_SHUTDOWN_GRACE_S": "3"},
                            log_path=tmp_path / "gateway.log")
        results: dict[str, Any] = {}
        try:
            def json_client() -> None:
                with httpx.Client(base_url=gw.url, timeout=30) as http:
                    results["json"] = http.post("/v1/chat/completions", json=BODY, headers=SIMPLE)

            def stream_client() -> None:
                demo.set_behavior("kimi", ttft_ms=20)
                with httpx.Client(base_url=gw.url, timeout=30) as http:
                    r = http.post("/v1/chat/completions", json={**BODY, "stream": True}, headers=SIMPLE)
                    results["stream"] = r

            stream_thread = threading.Thread(target=stream_client)
            stream_thread.start()
            # The stream is under way: Kimi sent its first token (its TTFT histogram counted it).
            # Waited for, not slept on: a gateway process on 2 busy cores may take longer than a second.
            assert wait_for(lambda: _first_tokens(demo, "kimi") >= 1, timeout_s=20)
            demo.set_behavior("kimi", ttft_ms=30_000)
            json_thread = threading.Thread(target=json_client)
            json_thread.start()
            # The JSON request waits upstream (next to the stream).
            assert wait_for(lambda: demo.stats("kimi")["in_flight"] == 2, timeout_s=20)
            gw.terminate()
            json_thread.join(timeout=15)
            stream_thread.join(timeout=15)
            gw.proc.wait(timeout=15)  # uvicorn re-raises SIGTERM once it has shut down (exit -15)
        finally:
            gw.stop()
    answer = results["json"]
    assert answer.status_code == 503 and answer.headers["content-type"].startswith("application/json")
    assert answer.json()["error"]["type"] == "service_unavailable"
    stream = results["stream"]
    assert stream.status_code == 200
    events = sse_events(stream.text)
    assert events[-1] == "[DONE]" and events[-2]["error"]["type"] == "service_unavailable"
    assert any(e.get("choices") for e in events[:-2])  # it was streaming when the drain came


def test_past_the_connection_cap_with_every_connection_busy_the_newcomer_gets_a_json_503(tmp_path: Path) -> None:
    with DemoUpstreams() as demo:
        for name in demo.names:
            demo.set_behavior(name, ttft_ms=20, tokens_per_s=2)  # streams that take a while
        gw = GatewayProcess(env={**demo_env(demo), "ROUTER_MAX_CONNECTIONS": "4"}, log_path=tmp_path / "gw.log")
        try:
            busy = []
            for _ in range(4):
                s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
                payload = orjson.dumps({**BODY, "stream": True})
                s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                          b"x-router-task-type: simple\r\ncontent-length: " + str(len(payload)).encode()
                          + b"\r\n\r\n" + payload)
                assert s.recv(65536).startswith(b"HTTP/1.1 200")  # streaming: the connection is busy
                busy.append(s)
            answer = _raw_exchange(gw.port, b"", 5)
            assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
            assert orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["type"] == "service_unavailable"
            for s in busy:
                s.close()
            with httpx.Client(base_url=gw.url, timeout=10) as http:  # room again once they are gone
                assert wait_for(lambda: http.get("/healthz").status_code == 200)
        finally:
            gw.stop()


def _first_tokens(demo: DemoUpstreams, name: str) -> float:
    """The demo engine's count of first tokens sent (its vLLM-style TTFT histogram)."""
    url = demo.metrics_url(name)
    assert url is not None
    return sum(s.value for family in text_string_to_metric_families(httpx.get(url, timeout=5).text)
               for s in family.samples if s.name == "vllm:time_to_first_token_seconds_count")


def wait_for(predicate: Any, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if predicate():
                return True
        time.sleep(0.1)
    return False
