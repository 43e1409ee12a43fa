"""A collector that yields nothing and runs callbacks: metrics counted in batches flush here.

Registered in a registry *before* the metrics it feeds, so a scrape (or any ``registry.collect()``,
such as ``get_sample_value``) runs the callbacks first and then reads up-to-date values. Used by
``router.tenants.metrics``: the request path adds to plain dictionaries (no lock, no label look-up
per request) and the Prometheus counters are brought up to date only when somebody reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector


class BeforeCollect(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self._callbacks: list[Callable[[], None]] = []
        registry.register(self)

    def add(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def describe(self) -> Iterable[Metric]:
        return ()  # no metric names: registering it never calls collect()

    def collect(self) -> Iterable[Metric]:
        for callback in self._callbacks:
            callback()
        return ()
