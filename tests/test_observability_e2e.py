"""End to end: a real Prometheus scrapes a real gateway that served demo traffic through every kind of
route, then every panel query of every generated dashboard must parse and return data.

Traffic: classified requests and one per task type (``X-Router-Task-Type``), a forced
``kimi:thinking``, streamed ``claude:default`` and Kimi answers, fallbacks (Kimi failing), a request
every route fails, an infeasible ceiling, a Kimi pool past its queue capacity (spill-over), a policy
reload and a swarm request. Prometheus (``apt-get install prometheus``; .ci/run installs it) runs on
127.0.0.1 with a throw-away config and TSDB and is always killed. Bounded: well under 90 s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from router import taxonomy
from router.tenants import manage
from tests.conftest import Gateway, default_policy
from tests.support.prometheus import PrometheusError, panel_queries, start_prometheus

DASHBOARDS = sorted((Path(__file__).resolve().parents[1] / "dashboards" / "generated").glob("*.json"))
PROMPT = "What is the capital of Australia, and why is it not Sydney?"
SWARM_PROMPT = ("Research each of these five cities for a weekend trip and recommend one thing to do in each:\n"
                "- Lisbon\n- Kyoto\n- Montreal\n- Cape Town\n- Reykjavik")
TINY_KEY: list[str] = []  # the rate-limited tenant's key, made with the tenants file
QUERY_DEADLINE_S = 30  # after traffic: rate() windows need a few scrapes


def wait(predicate: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def status(gw: Gateway) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{gw.base_url}/router/status", timeout=10,
                                     headers={"Authorization": "Bearer test-key"}).json()
    return body


def drive_traffic(gw: Gateway, policy: dict[str, Any]) -> dict[str, int]:
    """Every kind of route and outcome the dashboards show; returns what was sent, by kind."""
    client = gw.client()
    messages = [{"role": "user", "content": PROMPT}]
    sent: dict[str, int] = {}

    def count(kind: str) -> None:
        sent[kind] = sent.get(kind, 0) + 1

    for _ in range(2):  # the classifier labels these (confidence histogram by task type)
        for text in (PROMPT, "Write a short poem about the sea.", "hello!"):
            client.chat.completions.create(model="auto", messages=[{"role": "user", "content": text}])
            count("classified")
    for task_type in taxonomy.TASK_TYPES:
        if task_type in ("vision", "decomposable"):  # need an image / several subtasks: below
            continue
        client.chat.completions.create(model="auto", messages=messages,
                                       extra_headers={"X-Router-Task-Type": task_type})
        count(f"task:{task_type}")
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    client.chat.completions.create(model="auto", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"}, image]}])
    count("task:vision")
    client.chat.completions.create(model="kimi:thinking", messages=messages)
    count("forced kimi:thinking")
    for model in ("claude:default", "kimi:instant", "gpt:default"):  # streams: time to first token
        list(client.chat.completions.create(model=model, messages=messages, stream=True,
                                            stream_options={"include_usage": True}))
        count(f"stream {model}")

    if gw.services.pipeline.swarm is not None:
        for stream in (False, True):
            response = client.chat.completions.create(
                model="auto:swarm", messages=[{"role": "user", "content": SWARM_PROMPT}], stream=stream)
            if stream:
                list(response)
            count("swarm")

    with pytest.raises(openai.BadRequestError):  # infeasible: nothing fits a tiny ceiling
        client.chat.completions.create(model="auto", messages=messages,
                                       extra_headers={"X-Router-Max-Cost": "0.0000001"})
    count("infeasible")

    # Kimi's pool past its queue capacity: its routes are rejected for capacity and traffic spills over.
    capacity = policy["backends"]["kimi"]["queue_capacity"]
    gw.demo.set_behavior("kimi", queue_waiting=capacity + 4)
    wait(lambda: (status(gw)["backends"]["kimi"]["engine_queue"] or {}).get("waiting", 0) >= capacity,
         "the gateway to read the Kimi queue")
    client.chat.completions.create(model="auto", messages=messages, extra_headers={"X-Router-Task-Type": "simple"})
    count("spill-over")
    gw.demo.set_behavior("kimi", queue_waiting=0)
    wait(lambda: (status(gw)["backends"]["kimi"]["engine_queue"] or {}).get("waiting", 1) == 0,
         "the Kimi queue to drain")

    # A policy reload (the panel counts reloads by result).
    gw.write_policy({**policy, "version": f"{policy['version']}-reloaded"})
    wait(lambda: status(gw)["policy"]["version"].endswith("-reloaded"), "the policy reload")

    # Fallbacks: Kimi fails, the next route answers (plain and streamed); then every route fails.
    gw.demo.set_behavior("kimi", error_rate=1.0)
    for stream in (False, True):
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=messages, stream=stream, extra_headers={"X-Router-Task-Type": "reasoning"})
        if stream:
            list(raw.parse())
        assert int(raw.headers["x-router-fallbacks"]) >= 1
        count("fallback")
    for name in ("gpt", "claude"):
        gw.demo.set_behavior(name, error_rate=1.0)
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model="auto", messages=messages)
    assert failed.value.status_code in (502, 503)
    count("every route failing")
    gw.demo.reset()

    # The tuning loop: a shadow policy and exploration (hot reload), then feedback on an answer.
    shadow = gw.policy_path.parent / "shadow.yaml"
    shadow.write_text(yaml.safe_dump(policy, sort_keys=False))
    gw.write_policy({**policy, "version": f"{policy['version']}-tuning", "shadow": shadow.name,
                     "exploration": {"rate": 0.5}})
    wait(lambda: status(gw)["policy"]["version"].endswith("-tuning"), "the tuning policy reload")
    explored = 0
    for sent_n in range(1, 41):  # at least 12; P(none explored in 40) = 0.5^40 (0.5^12 failed 1 run in 4,096)
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=messages, extra_headers={"X-Router-Task-Type": "simple"})
        explored += raw.headers["x-router-route"] != "kimi:instant"
        count("tuning")
        if explored and sent_n >= 12:
            break
    assert explored
    feedback = httpx.post(f"{gw.url}/v1/feedback", json={"request_id": raw.headers["x-router-request-id"],
                                                          "thumbs": "up"}, timeout=10,
                          headers={"Authorization": "Bearer test-key"})
    assert feedback.status_code == 200
    # Tenants: a tenant past its rate limit, and a request that waits in the admission queue
    # (gpt-mini takes one request at a time in this policy).
    tiny = gw.client(api_key=TINY_KEY[0])
    tiny.chat.completions.create(model="auto", messages=messages)
    with pytest.raises(openai.RateLimitError):
        tiny.chat.completions.create(model="auto", messages=messages)
    count("rate limited")
    gw.demo.set_behavior("gpt", ttft_ms=300)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: client.chat.completions.create(model="gpt-mini:default", messages=messages),
                      range(2)))
    count("queued")
    gw.demo.reset()
    return sent


def test_every_dashboard_panel_returns_data(gateway_factory: Callable[..., Gateway], tmp_path: Path) -> None:
    started = time.monotonic()
    policy = default_policy(backends={"gpt-mini": {"max_concurrency": 1}})
    # Tenants: the test's key is the tenant `default` (with a monthly budget); `tiny` allows 1 rpm.
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text("tenants:\n  default: {monthly_budget_usd: 100}\n  tiny: {rpm: 1}\n")
    TINY_KEY[:] = [manage.create_key(tenants, "tiny").key]
    gw = gateway_factory(policy, settings={"client_keys": "test-key", "tenants_file": tenants})
    for name in ("kimi", "gpt", "claude"):  # quick answers keep the test short; TTFTs stay non-zero
        gw.demo.set_behavior(name, ttft_ms=10, tokens_per_s=0)
    target = gw.url.removeprefix("http://")
    queries = [(path.stem, title, expr) for path in DASHBOARDS
               for title, expr in panel_queries(json.loads(path.read_text(encoding="utf-8")))]
    assert len(DASHBOARDS) >= 3 and len(queries) > 40

    with start_prometheus([target], scrape_interval="1s") as prom:
        sent = drive_traffic(gw, policy)
        prom.wait_for_up()
        prom.wait_for_samples("router_requests_total", samples=3)
        empty: list[str] = []
        broken: list[str] = []
        deadline = time.monotonic() + QUERY_DEADLINE_S
        while True:
            empty, broken = [], []
            for dashboard, title, expr in queries:
                try:
                    result = prom.query(expr)
                except PrometheusError as exc:  # does not parse, or fails to evaluate
                    broken.append(f"{dashboard} / {title}: {exc}")
                    continue
                if not result:
                    empty.append(f"{dashboard} / {title}: {expr}")
            if broken or not empty or time.monotonic() > deadline:
                break
            time.sleep(1)
        swarm_series = prom.query('sum(router_requests_total{route="swarm"})')

    assert not broken, "panel queries Prometheus rejects:\n" + "\n".join(broken)
    assert not empty, (f"panel queries with no series after traffic {sent}:\n" + "\n".join(empty))
    if gw.services.pipeline.swarm is not None:
        assert swarm_series and float(swarm_series[0]["value"][1]) >= 2
    assert time.monotonic() - started < 90
