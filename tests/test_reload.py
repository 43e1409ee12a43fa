"""Hot reload over HTTP: a policy change under load fails no request, and the new rule applies."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway, default_policy
from tests.support.routing import chat, fast_overrides, wait_until

WORKERS = 4
MAX_REQUESTS = 400
MAX_SECONDS = 6.0


def fast_reloading(factory: Callable[..., Gateway], policy: dict[str, Any]) -> Gateway:
    return factory(policy, settings={"policy_reload_interval_s": 0.05})


def test_policy_change_under_load_fails_no_request_and_the_new_rule_applies(
        gateway_factory: Callable[..., Gateway], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="router.policy")
    old = default_policy(**fast_overrides(version="old"))
    gw = fast_reloading(gateway_factory, old)
    for name in gw.demo.names:  # unpaced: as many requests in flight across the swap as possible
        gw.demo.set_behavior(name, ttft_ms=0, tokens_per_s=0)
    # (status, route, sent at, finished at): "after the switch" is by when a request was sent — one
    # decided under the old policy may finish well after the switch on 2 busy cores (> 100 ms).
    results: list[tuple[int, str, float, float]] = []
    stop = threading.Event()
    started = time.monotonic()

    def load() -> None:
        with httpx.Client(base_url=gw.url, timeout=30) as http:
            while not stop.is_set() and len(results) < MAX_REQUESTS and time.monotonic() - started < MAX_SECONDS:
                stream = len(results) % 2 == 1
                sent = time.monotonic()
                r = chat(http, stream=stream)
                results.append((r.status_code, r.headers.get("x-router-route", ""), sent, time.monotonic()))

    with ThreadPoolExecutor(WORKERS) as pool:
        workers = [pool.submit(load) for _ in range(WORKERS)]
        assert wait_until(lambda: len(results) >= 20, timeout_s=3)
        # An invalid file first: the old policy stays in force and every problem is logged.
        broken = default_policy(**fast_overrides(version="broken", objective="cheapest",
                                                 tasks={"simple": {"candidates": ["kimi2:instant"]}}))
        gw.write_policy(broken)
        assert wait_until(lambda: "policy reload rejected" in caplog.text, timeout_s=2)
        rejected_at = time.monotonic()
        assert wait_until(lambda: sum(1 for *_, t in results if t > rejected_at) >= 10, timeout_s=3)
        # Then a valid one with a new rule: simple requests now go to Claude.
        new = default_policy(**fast_overrides(version="new", tasks={"simple": {"candidates": ["claude:default"]}}))
        written_at = time.monotonic()
        gw.write_policy(new)
        assert wait_until(lambda: gw.services.store.current.policy.version == "new", timeout_s=2)
        switched_at = time.monotonic()
        assert wait_until(lambda: sum(1 for _, _, sent, _ in results if sent > switched_at) >= 20, timeout_s=3)
        stop.set()
        for worker in workers:
            worker.result()

    assert len(results) >= 40
    assert all(status == 200 for status, *_ in results), [r for r in results if r[0] != 200][:5]
    before = {route for _, route, _, done in results if done < written_at}  # the broken file changed nothing
    after = {route for _, route, sent, _ in results if sent > switched_at}  # the store had the new policy
    assert before == {"kimi:instant"}
    assert after == {"claude:default"}
    assert "objective:" in caplog.text and "kimi2:instant" in caplog.text  # each problem, with its path
    with httpx.Client(base_url=gw.url) as http:
        assert http.get("/v1/router/status").json()["policy"]["version"] == "new"


def test_a_reload_that_removes_the_backend_of_an_in_flight_request_does_not_fail_it(
        gateway_factory: Callable[..., Gateway]) -> None:
    policy = default_policy(**fast_overrides(tasks={"simple": {"candidates": ["claude:default"]}}))
    gw = fast_reloading(gateway_factory, policy)
    gw.demo.set_behavior("claude", ttft_ms=600)
    without_claude = default_policy(**fast_overrides(version="no-claude"))
    del without_claude["backends"]["claude"]
    for task in without_claude["tasks"].values():
        task["candidates"] = [r for r in task["candidates"] if not r.startswith("claude")]
    for priors in without_claude["quality"].values():
        priors.pop("claude:default", None)
    del without_claude["aliases"]["claude-sonnet-4-5"], without_claude["aliases"]["claude-*"]

    with httpx.Client(base_url=gw.url, timeout=30) as http, ThreadPoolExecutor(2) as pool:
        in_flight = [pool.submit(chat, http, stream=stream) for stream in (False, True)]
        assert wait_until(lambda: gw.demo.stats("claude")["in_flight"] == 2, timeout_s=2)
        gw.write_policy(without_claude)
        assert wait_until(lambda: gw.services.store.current.policy.version == "no-claude", timeout_s=2)
        for future in in_flight:
            r = future.result()
            assert r.status_code == 200, r.text
            assert r.headers["x-router-route"] == "claude:default"
        after = chat(http)
    assert after.status_code == 200 and after.headers["x-router-route"] == "kimi:instant"


def test_sighup_forces_a_check(gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(default_policy(**fast_overrides(version="one")), settings={"policy_reload_interval_s": 0})
    gw.write_policy(default_policy(**fast_overrides(version="two")))
    time.sleep(0.2)
    assert gw.services.store.current.policy.version == "one"  # polling is off
    assert gw.services.store.reload_if_changed(force=True)  # what the SIGHUP handler calls
    assert gw.services.store.current.policy.version == "two"
