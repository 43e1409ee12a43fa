"""Alert rules: promtool accepts them, their unit tests pass, each alert is tested firing and quiet,
they only use metrics the gateway exports, and their recording rules produce data on a real Prometheus."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.observability.metrics import RouterMetrics
from tests.support.prometheus import find_binary, serve_metrics, start_prometheus
from tests.test_dashboards import exported_series, record_sample_traffic

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "dashboards" / "alerts"
RULES = ALERTS / "model-router.rules.yaml"
RULE_TESTS = sorted((ALERTS / "tests").glob("*.yaml"))
SEVERITIES = {"critical", "warning"}
# Labels an alert may carry: closed sets only, never anything per request.
BOUNDED_LABELS = {"route", "from_route", "to_route", "backend", "reason", "kind", "mode", "task_type",
                  "status", "outcome", "direction", "le",
                  "tenant", "period"}  # tenant: names from the tenants file only, capped (router/tenants/metrics.py)


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([find_binary("promtool"), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=[p.name for p in RULE_TESTS])
def test_promtool_test_rules(test_file: Path) -> None:
    result = promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_alert_is_tested_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - firing == set(), f"alerts never tested firing: {sorted(names - firing)}"
    assert names - quiet == set(), f"alerts never tested staying quiet: {sorted(names - quiet)}"
    assert (firing | quiet) - names == set(), f"tests name unknown alerts: {sorted((firing | quiet) - names)}"


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_alert_has_severity_for_and_runbook_text(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in SEVERITIES
    assert set(rule["labels"]) == {"severity"}, "extra static labels belong in the Alertmanager route"
    assert re.fullmatch(r"\d+[mh]", rule["for"]), "every alert waits before firing (`for:`)"
    annotations = rule["annotations"]
    assert annotations["summary"] and len(annotations["description"]) > 80
    assert annotations["dashboard"].startswith("/d/model-router-")


def test_rules_use_exported_metrics_and_bounded_labels() -> None:
    metrics = RouterMetrics()
    record_sample_traffic(metrics)
    series = exported_series(metrics.registry)
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    for rule in rules():
        expr = rule["expr"]
        for name in re.findall(r"\brouter_[a-z0-9_]+", expr):
            assert name in series, f"{rule.get('alert') or rule['record']}: `{name}` is not in RouterMetrics"
        for name in re.findall(r"\brouter:[a-z0-9_:]+", expr):
            assert name in recorded, f"{rule.get('alert') or rule['record']}: `{name}` is never recorded"
        for group in re.findall(r"\b(?:by|on|ignoring)\s*\(([^)]*)\)", expr):
            labels = {x.strip() for x in group.split(",") if x.strip()}
            assert labels <= BOUNDED_LABELS, f"{expr}: groups by unbounded labels {labels - BOUNDED_LABELS}"


def test_recording_rules_produce_data_on_real_prometheus() -> None:
    """Loaded into a real Prometheus scraping a real RouterMetrics, every recording rule yields a series."""
    metrics = RouterMetrics()
    ticks = iter(range(1_000_000))
    record_sample_traffic(metrics, next(ticks))
    recorded = [rule["record"] for rule in rules() if "record" in rule]
    with serve_metrics(metrics.registry, before_scrape=lambda: record_sample_traffic(metrics, next(ticks))) \
            as target, start_prometheus([target], rule_files=[RULES]) as prom:
        prom.wait_for_up()
        prom.wait_for_samples("router_requests_total", samples=3)
        for name in recorded:
            prom.wait_until(name, timeout=20)
        deadline = time.monotonic() + 10
        while True:  # a rule's health is "unknown" until its group's first evaluation
            health = {r["name"]: (r["health"], r.get("lastError"))
                      for g in prom.api("/api/v1/rules")["data"]["groups"] for r in g["rules"]}
            if {h for h, _ in health.values()} == {"ok"} or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        assert {h for h, _ in health.values()} == {"ok"}, health
