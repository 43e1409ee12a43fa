"""Background scraper of self-hosted engines' Prometheus metrics (vLLM or SGLang queue depth).

Runs off the hot path: one task polls each backend that has a ``metrics_url`` and writes the
result into ``LiveState``; a failed scrape clears the reading (unknown, not "empty").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import aiohttp

from router.engine.live import LiveState
from router.policy.model import Policy

log = logging.getLogger("router.engine_queue")

_WAITING = ("vllm:num_requests_waiting", "sglang:num_queue_reqs")
_RUNNING = ("vllm:num_requests_running", "sglang:num_running_reqs")
_KV = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage")


def parse_engine_metrics(text: str) -> tuple[float | None, float | None, float | None]:
    """(waiting, running, kv usage) summed over series; a plain line scan, no full parser."""
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        name_end = min((i for i in (line.find("{"), line.find(" ")) if i > 0), default=-1)
        if name_end <= 0:
            continue
        name = line[:name_end]
        if name in _WAITING or name in _RUNNING or name in _KV:
            try:
                value = float(line.rsplit(" ", 1)[-1] if "}" not in line else line.rsplit("}", 1)[1].split()[0])
            except (ValueError, IndexError):
                continue
            sums[name] = sums.get(name, 0.0) + value

    def first(names: tuple[str, ...]) -> float | None:
        return next((sums[n] for n in names if n in sums), None)

    return first(_WAITING), first(_RUNNING), first(_KV)


class EngineQueueScraper:
    """Scrapes every ``policy.engine_metrics.scrape_interval_s`` (re-read each round, so a reload
    applies), unless ``interval_s`` fixes it."""

    def __init__(self, live: LiveState, policy: Callable[[], Policy], *, interval_s: float | None = None,
                 on_reading: Callable[[str, float | None], None] | None = None) -> None:
        self._live = live
        self._policy = policy
        self._interval_s = interval_s
        self._on_reading = on_reading
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="engine-queue-scraper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        async with aiohttp.ClientSession(trust_env=False) as session:
            while True:
                policy = self._policy()
                settings = policy.engine_metrics
                timeout = aiohttp.ClientTimeout(total=settings.scrape_timeout_s)
                targets = {n: b.metrics_url for n, b in policy.backends.items() if b.enabled and b.metrics_url}
                await asyncio.gather(*(self._scrape(session, n, url, timeout) for n, url in targets.items()))
                await asyncio.sleep(self._interval_s or settings.scrape_interval_s)

    async def _scrape(self, session: aiohttp.ClientSession, backend: str, url: str,
                      client_timeout: aiohttp.ClientTimeout) -> None:
        try:
            async with session.get(url, timeout=client_timeout) as resp:
                text = await resp.text() if resp.status == 200 else ""
        except (TimeoutError, aiohttp.ClientError):
            text = ""
        except Exception:  # never let one odd reply stop the scraper
            log.exception("engine metrics scrape of %s failed", backend)
            text = ""
        waiting, running, kv = parse_engine_metrics(text) if text else (None, None, None)
        self._live.set_queue(backend, waiting=waiting, running=running, kv_usage=kv)
        if self._on_reading is not None:
            self._on_reading(backend, waiting)
