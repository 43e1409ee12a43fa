"""The tenants' per-request bookkeeping: batched metrics (flushed when read) and the rate headers."""

from __future__ import annotations

import threading

import pytest

from router.observability.metrics import RouterMetrics
from router.tenants.enforce import rate_headers, reset_text
from router.tenants.limits import Meter
from router.tenants.metrics import TenantMetrics
from router.tenants.state import Reading


def sample(m: RouterMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_finished_requests_and_spend_are_counted_when_the_registry_is_read() -> None:
    m = RouterMetrics()
    tm = TenantMetrics(m, ["team", "ops"], cap=1)  # "team" is past the cap: "other"
    for _ in range(3):
        tm.finished("ops", "ok", 0.25)
    tm.finished("ops", "upstream_error", 0.0)
    tm.finished("team", "ok", 0.5)
    # Nothing touched the Prometheus series yet; reading the registry brings them up to date.
    assert sample(m, "router_tenant_requests_total", tenant="ops", status="ok") == 3
    assert sample(m, "router_tenant_requests_total", tenant="ops", status="upstream_error") == 1
    assert sample(m, "router_tenant_requests_total", tenant="other", status="ok") == 1
    assert sample(m, "router_tenant_spend_usd_total", tenant="ops") == pytest.approx(0.75)
    assert sample(m, "router_tenant_spend_usd_total", tenant="other") == pytest.approx(0.5)
    # A second read sends only what is new (nothing is counted twice).
    tm.finished("ops", "ok", 0.25)
    assert sample(m, "router_tenant_requests_total", tenant="ops", status="ok") == 4
    assert sample(m, "router_tenant_requests_total", tenant="ops", status="ok") == 4
    assert sample(m, "router_tenant_spend_usd_total", tenant="ops") == pytest.approx(1.0)


def test_a_read_from_another_thread_loses_nothing() -> None:
    m = RouterMetrics()
    tm = TenantMetrics(m, ["ops"])
    stop = threading.Event()

    def scrape() -> None:
        while not stop.is_set():
            m.registry.collect().__next__()  # a scrape running concurrently with the request path

    reader = threading.Thread(target=scrape)
    reader.start()
    try:
        for _ in range(20_000):
            tm.finished("ops", "ok", 0.001)
    finally:
        stop.set()
        reader.join()
    assert sample(m, "router_tenant_requests_total", tenant="ops", status="ok") == 20_000
    assert sample(m, "router_tenant_spend_usd_total", tenant="ops") == pytest.approx(20.0)


def test_budget_gauges_show_the_last_admission_seen() -> None:
    m = RouterMetrics()
    tm = TenantMetrics(m, ["ops"])
    meter = Meter("t", monthly_usd=10.0)
    tm.readings("ops", [Reading(meter, monthly_spent=2.0, monthly_reserved=1.0)])
    tm.readings("ops", [Reading(meter, monthly_spent=3.0, monthly_reserved=0.5)])
    assert sample(m, "router_tenant_budget_usd", tenant="ops", period="month") == 10.0
    assert sample(m, "router_tenant_budget_remaining_usd", tenant="ops", period="month") == pytest.approx(6.5)
    assert sample(m, "router_tenant_budget_usd", tenant="ops", period="day") is None  # no daily budget


def test_a_reload_flushes_under_the_old_labels_first() -> None:
    m = RouterMetrics()
    tm = TenantMetrics(m, ["ops"])
    tm.finished("ops", "ok", 0.0)
    tm.set_names(["other-team"])  # "ops" left the file
    tm.finished("ops", "ok", 0.0)
    assert sample(m, "router_tenant_requests_total", tenant="ops", status="ok") == 1
    assert sample(m, "router_tenant_requests_total", tenant="other", status="ok") == 1


@pytest.mark.parametrize(("ms", "text"), [
    (-5, "0ms"), (0, "0ms"), (20, "20ms"), (999, "999ms"), (1000, "1s"), (1001, "1.01s"), (1500, "1.5s"),
    (9991, "10s"), (10_000, "10s"), (10_001, "10.1s"), (12_345, "12.4s"), (59_999, "60s"), (60_000, "60s"),
    (60_001, "1m1s"), (360_000, "6m0s"),
])
def test_reset_text_is_openais_shape_rounded_up(ms: int, text: str) -> None:
    assert reset_text(ms) == text


def test_rate_headers_name_the_tightest_meter_of_each_kind() -> None:
    tenant, key = Meter("t", rpm=100, tpm=1000), Meter("k:key_0000000000000001", rpm=10)
    headers = rate_headers([Reading(tenant, requests=5, requests_reset_ms=30_000, tokens=400, tokens_reset_ms=1500),
                            Reading(key, requests=9, requests_reset_ms=250)])
    assert headers == {
        "x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "250ms",
        "x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "600",
        "x-ratelimit-reset-tokens": "1.5s"}
    assert rate_headers([Reading(Meter("t", tpm=50), tokens=80, tokens_reset_ms=2000)]) == {
        "x-ratelimit-limit-tokens": "50", "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "2s"}
    assert rate_headers([Reading(Meter("t", monthly_usd=1.0))]) == {}
