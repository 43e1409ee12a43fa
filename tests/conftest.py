"""Shared fixtures: the demo upstreams and real gateways on loopback, driven over HTTP.

Nothing here fakes our own code: a gateway is the real app (``create_app``) under uvicorn in a
background thread, talking over real HTTP to the demo upstreams (also real aiohttp servers).
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import openai
import pytest
import uvicorn
import yaml

from router.app import create_app
from router.demo import DemoUpstreams
from router.server import ConnectionLimits, GatewayServer, guarded_protocol
from router.services import Services
from router.settings import PACKAGED_POLICY, Settings

REPO = Path(__file__).resolve().parent.parent
CLIENT_OUTLIVING_KEEP_ALIVE_S = 30


def default_policy(**overrides: Any) -> dict[str, Any]:
    """The packaged policy as a dict, with ``overrides`` deep-merged in (for test variants)."""
    policy = yaml.safe_load(PACKAGED_POLICY.read_text())

    def merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                merge(base[key], value)
            else:
                base[key] = copy.deepcopy(value)

    merge(policy, overrides)
    return policy


@dataclass
class Gateway:
    url: str
    services: Services
    demo: DemoUpstreams
    policy_path: Path
    _server: uvicorn.Server
    _thread: threading.Thread
    extra_stops: list[Callable[[], None]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def client(self, api_key: str = "test-key", **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=api_key, max_retries=0, **kwargs)

    def async_client(self, api_key: str = "test-key", **kwargs: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=api_key, max_retries=0, **kwargs)

    def write_policy(self, policy: dict[str, Any]) -> None:
        tmp = self.policy_path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(policy, sort_keys=False))
        tmp.replace(self.policy_path)  # atomic, like a ConfigMap update

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        for stop in self.extra_stops:
            stop()


def start_gateway(demo: DemoUpstreams, policy: dict[str, Any], directory: Path, *, classifier: Any,
                  settings: dict[str, Any] | None = None, tracer: Any = None,
                  env: dict[str, str] | None = None, http: Any = None) -> Gateway:
    policy_path = directory / "policy.yaml"
    policy_path.write_text(yaml.safe_dump(policy, sort_keys=False))
    cfg = Settings(policy_file=policy_path, port=0, **(settings or {}))
    services = Services.build(cfg, env=env if env is not None else {}, classifier=classifier, tracer=tracer,
                              demo=demo)
    app = create_app(cfg, services)
    # The protocol `router serve` runs (timeouts, cap, HeadWithBody, DisconnectWatch) unless a test asks otherwise.
    http = http if http is not None else guarded_protocol(ConnectionLimits())
    # Kept-alive connections outlive the clients' own idle expiry (httpx, so the SDKs: 5 s). With both
    # at 5 s (uvicorn's default, `router serve`'s keep_alive_s), a client reusing a connection idle
    # for ~5 s raced the server closing it: "Connection reset by peer" (SDK clients here never retry).
    server = GatewayServer(uvicorn.Config(app, host="127.0.0.1", port=0, loop="uvloop", http=http,  # serve's listener
                                          log_level="warning", access_log=False,
                                          timeout_keep_alive=CLIENT_OUTLIVING_KEEP_ALIVE_S),
                           app.drain)  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.run, name="gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return Gateway(f"http://127.0.0.1:{port}", services, demo, policy_path, server, thread)


@pytest.fixture(scope="session")
def classifier() -> Any:
    from router.classifier import TaskClassifier

    return TaskClassifier.load()


@pytest.fixture(scope="session")
def session_demo() -> Iterator[DemoUpstreams]:
    with DemoUpstreams() as demo:
        yield demo


@pytest.fixture
def demo(session_demo: DemoUpstreams) -> Iterator[DemoUpstreams]:
    """The shared demo upstreams, reset to default behaviour after each test."""
    yield session_demo
    session_demo.reset()


@pytest.fixture(scope="session")
def gateway(session_demo: DemoUpstreams, classifier: Any,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway with the packaged default policy pointed at the shared demo upstreams."""
    gw = start_gateway(session_demo, default_policy(), tmp_path_factory.mktemp("gateway"), classifier=classifier)
    yield gw
    gw.stop()


@pytest.fixture
def client(gateway: Gateway) -> openai.OpenAI:
    return gateway.client()


@pytest.fixture
def gateway_factory(classifier: Any, tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    """Start isolated gateways (own demo upstreams, own live state) for fault and policy tests."""
    started: list[Gateway] = []

    def factory(policy: dict[str, Any] | None = None, *, demo: DemoUpstreams | None = None, **kwargs: Any) -> Gateway:
        own_demo = demo is None
        upstreams = demo or DemoUpstreams().start()
        directory = tmp_path / f"gw{len(started)}"
        directory.mkdir()
        gw = start_gateway(upstreams, policy or default_policy(), directory, classifier=classifier, **kwargs)
        if own_demo:
            gw.extra_stops.append(upstreams.stop)
        started.append(gw)
        return gw

    yield factory
    for gw in started:
        gw.stop()


@pytest.fixture(scope="session")
def full_gateway(classifier: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway over every demo upstream `make run` starts, Moonshot's API (kimi-api) included."""
    from router.demo.runner import ALL_SPECS

    with DemoUpstreams(list(ALL_SPECS)) as demo:
        gw = start_gateway(demo, default_policy(), tmp_path_factory.mktemp("full-gateway"), classifier=classifier)
        yield gw
        gw.stop()
