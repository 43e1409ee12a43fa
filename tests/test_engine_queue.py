"""The engine-queue scraper against demo vLLM and SGLang servers' /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import yaml

from router.demo import DemoServerSpec, DemoUpstreams
from router.engine.engine_queue import EngineQueueScraper, parse_engine_metrics
from router.engine.live import LiveState
from router.policy.loader import load_policy_text
from tests.conftest import default_policy


def test_parse_sums_series_and_reads_both_engines() -> None:
    vllm = ('# HELP vllm:num_requests_waiting x\nvllm:num_requests_waiting{engine="0"} 3.0\n'
            'vllm:num_requests_waiting{engine="1"} 2.0\nvllm:num_requests_running{engine="0"} 7\n'
            'vllm:kv_cache_usage_perc{engine="0"} 0.5\nvllm:time_to_first_token_seconds_sum 1.0\n')
    assert parse_engine_metrics(vllm) == (5.0, 7.0, 0.5)
    sglang = "sglang:num_queue_reqs{model_name=\"k\"} 4\nsglang:num_running_reqs 9\nsglang:token_usage 0.25\n"
    assert parse_engine_metrics(sglang) == (4.0, 9.0, 0.25)
    assert parse_engine_metrics("garbage\nvllm:num_requests_waiting{x=\"1\"} nan-ish\n") == (None, None, None)


@pytest.mark.parametrize("kind", ["vllm", "sglang"])
def test_scraper_follows_the_engine_queue_at_the_policy_interval(kind: str) -> None:
    with DemoUpstreams([DemoServerSpec("kimi", kind)]) as demo:  # type: ignore[arg-type]
        policy = load_policy_text(yaml.safe_dump(default_policy(engine_metrics={"scrape_interval_s": 0.02})),
                                  env={"KIMI_API_BASE": demo.base_url("kimi"),
                                       "KIMI_METRICS_URL": demo.metrics_url("kimi") or ""}).policy
        live = LiveState(policy)
        readings: list[float | None] = []

        async def scenario() -> None:
            scraper = EngineQueueScraper(live, lambda: policy, on_reading=lambda _, w: readings.append(w))
            scraper.start()
            try:
                await until(lambda: live.queue("kimi")["waiting"] == 0)
                demo.set_behavior("kimi", queue_waiting=12, kv_cache_usage=0.8)
                await until(lambda: live.queue("kimi")["waiting"] == 12)
                assert live.queue("kimi")["kv_cache_usage"] == 0.8
                assert live.backend("kimi").queue_wait_ms > 0
                demo.stop()  # the engine goes away: the reading becomes unknown, not "empty"
                await until(lambda: live.queue("kimi")["waiting"] is None)
            finally:
                await scraper.stop()

        asyncio.run(scenario())
    assert len(readings) >= 3


async def until(predicate: Callable[[], bool], timeout_s: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)
