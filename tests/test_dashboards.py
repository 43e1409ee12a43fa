"""Dashboards as code: the committed JSON is what the generator writes, every panel queries metrics the
gateway really exports, the JSON matches Grafana's schema, and every query runs on a real Prometheus."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from router.observability.metrics import CIRCUIT_STATE_VALUE, RouterMetrics
from tests.support.prometheus import iter_panels, panel_queries, serve_metrics, start_prometheus

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "dashboards"
GENERATED = DASHBOARDS / "generated"
SCHEMA_CHECK = DASHBOARDS / "schema-check"
NAMES = ("overview", "routing", "swarm", "tuning")

sys.path.insert(0, str(DASHBOARDS))
import generate  # noqa: E402  (dashboards/ is not a package; the generator is a script)


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GENERATED / f"{name}.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module", params=NAMES)
def dashboard(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(request.param)


# ---------------------------------------------------------------- sample traffic for every metric

ROUTES = {  # route -> (backend, mode, task types that go there)
    "kimi:instant": ("kimi", "instant", ("simple", "creative")),
    "kimi:thinking": ("kimi", "thinking", ("reasoning", "long_context")),
    "kimi:agent": ("kimi", "agent", ("agentic",)),
    "gpt:default": ("gpt", "default", ("coding", "vision")),
    "claude:default": ("claude", "default", ("coding",)),
    "swarm": ("kimi", "swarm", ("decomposable",)),
}
STATUSES = ("ok", "ok", "ok", "upstream_error", "timeout", "client_error", "rate_limited")


def record_sample_traffic(m: RouterMetrics, tick: int = 0) -> None:
    """One round of observations touching every metric and every label value the panels filter on."""
    for i, (route, (backend, mode, task_types)) in enumerate(ROUTES.items()):
        for task_type in task_types:
            status = STATUSES[(tick + i) % len(STATUSES)]
            m.requests.labels(route=route, task_type=task_type, mode=mode, status="ok", api="chat").inc()
            m.requests.labels(route=route, task_type=task_type, mode=mode, status=status, api="chat").inc()
            m.classifier_confidence.labels(task_type=task_type).observe(0.35 + 0.1 * (tick % 6))
        m.request_duration.labels(route=route, api="chat").observe(0.2 * (i + 1) + 0.01 * tick)
        m.ttft.labels(route=route).observe(0.05 * (i + 1))
        for direction, tokens in (("input", 900), ("output", 300), ("reasoning", 150)):
            m.tokens.labels(route=route, direction=direction).inc(tokens + tick)
        m.cost.labels(route=route).inc(0.002 * (i + 1))
        m.estimated_cost.labels(route=route).inc(0.0018 * (i + 1))
        m.budget_outcomes.labels(route=route, outcome="met").inc(3)
        m.budget_outcomes.labels(route=route, outcome="missed").inc(tick % 2)
        m.upstream_duration.labels(backend=backend).observe(0.15 * (i + 1))
    # The gateway counts a request no route could serve under route "none", mode "none".
    m.requests.labels(route="none", task_type="reasoning", mode="none", status="infeasible", api="chat").inc()
    m.overhead.observe(0.0004)
    m.decision_duration.observe(0.0002)
    m.fallbacks.labels(from_route="kimi:thinking", to_route="gpt:default", reason="http_5xx").inc()
    m.fallbacks.labels(from_route="gpt:default", to_route="claude:default", reason="timeout").inc()
    m.rejections.labels(route="kimi:thinking", reason="capacity").inc()
    m.rejections.labels(route="claude:default", reason="cost").inc()
    m.rejections.labels(route="gpt:default", reason="latency").inc()
    m.upstream_errors.labels(backend="kimi", kind="http_5xx").inc()
    m.upstream_errors.labels(backend="gpt", kind="timeout").inc()
    for backend, state in (("kimi", "closed"), ("gpt", "half_open"), ("claude", "open")):
        m.circuit_state.labels(backend=backend).set(CIRCUIT_STATE_VALUE[state])
        m.inflight.labels(backend=backend).set(3 + tick % 4)
    m.engine_queue.labels(backend="kimi").set(5 + tick % 7)
    m.swarm_agents.observe(4 + tick % 9)
    m.swarm_failed_agents.inc(tick % 2)
    m.swarm_duration.observe(12.0 + tick % 5)
    m.swarm_efficiency.observe(0.55 + 0.05 * (tick % 5))
    m.swarm_cost.inc(0.03)
    m.swarm_tool_calls.labels("search", "ok" if tick % 3 else "timeout").inc()
    m.swarm_agent_routes.labels("kimi:instant" if tick % 2 else "kimi:thinking", "simple").inc()
    m.policy_reloads.labels(result="ok").inc()
    m.policy_reloads.labels(result="error").inc(0)
    m.policy_info.labels(name="default", version="1").set(1)
    # The tuning loop: decision log, feedback, exploration, shadow policy.
    m.decision_log_records.inc(10)
    m.decision_log_dropped.labels(reason="queue_full").inc(tick % 2)
    for route, shadow_route in (("kimi:instant", "kimi:instant"), ("gpt:default", "kimi:thinking")):
        m.feedback.labels(route=route, task_type="coding").inc()
        m.feedback_score.labels(route=route, task_type="coding").observe(0.2 + 0.1 * (tick % 7))
        m.exploration.labels(route=route, task_type="coding").inc()
        m.label_source.labels(source="cascade" if route == "kimi:instant" else "model").inc()
        m.cascade.labels(outcome="relabelled").inc()
        m.cascade_cost.inc(0.00002)
        m.shadow_decisions.labels(route=route, shadow_route=shadow_route).inc(2)
        m.shadow_estimated_cost.labels(shadow_route=shadow_route).inc(0.001)
        m.shadow_live_estimated_cost.labels(route=route).inc(0.0015)
    for tenant, used in (("search", 0.7 + 0.01 * (tick % 5)), ("ads", 0.2)):  # tenants (issue 14)
        m.tenant_requests.labels(tenant=tenant, status="ok").inc(3)
        m.tenant_rejections.labels(tenant=tenant, reason="rate_limit_requests").inc(tick % 2)
        m.tenant_rejections.labels(tenant=tenant, reason="budget").inc()
        m.tenant_spend.labels(tenant=tenant).inc(0.004)
        m.tenant_budget.labels(tenant=tenant, period="month").set(100)
        m.tenant_budget_remaining.labels(tenant=tenant, period="month").set(100 * (1 - used))
    m.tenant_state_failures.inc(0)
    m.admission_queue_depth.set(tick % 3)
    m.admission_queue_wait.labels(tenant="search", outcome="admitted").observe(0.05 + 0.01 * (tick % 4))


def exported_series(registry: CollectorRegistry) -> dict[str, set[str]]:
    """Sample name (with _total/_bucket/_sum/_count) -> its label names, as Prometheus will see them."""
    series: dict[str, set[str]] = {}
    for family in registry.collect():
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                series.setdefault(sample.name, set()).update(sample.labels)
    return series


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def defined_series(m: RouterMetrics) -> set[str]:
    """Every sample name RouterMetrics defines, from its registry's families (no observations needed)."""
    return {f.name + suffix for f in m.registry.collect() for suffix in SUFFIXES[f.type]}


# ---------------------------------------------------------------- generated files


def test_generated_json_is_up_to_date(tmp_path: Path) -> None:
    assert generate.main(["--out", str(tmp_path)]) == 0
    for name in NAMES:
        fresh = (tmp_path / f"{name}.json").read_text(encoding="utf-8")
        committed = (GENERATED / f"{name}.json").read_text(encoding="utf-8")
        assert fresh == committed, f"generated/{name}.json is stale: run python dashboards/generate.py"
    assert generate.main(["--check"]) == 0


def test_check_flag_reports_drift(tmp_path: Path) -> None:
    generate.main(["--out", str(tmp_path)])
    (tmp_path / "swarm.json").write_text("{}\n", encoding="utf-8")
    assert generate.main(["--check", "--out", str(tmp_path)]) == 1


def test_dashboard_metadata(dashboard: dict[str, Any]) -> None:
    assert "do not edit" in dashboard["description"]
    assert dashboard["uid"].startswith("model-router-") and len(dashboard["uid"]) <= 40
    assert dashboard["schemaVersion"] >= 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def test_uids_are_unique() -> None:
    uids = [load(name)["uid"] for name in NAMES]
    assert len(set(uids)) == len(uids)


def test_every_panel_has_a_query_and_a_place(dashboard: dict[str, Any]) -> None:
    ids = set()
    for panel in iter_panels(dashboard):
        assert panel["id"] not in ids, f"duplicate panel id {panel['id']}"
        ids.add(panel["id"])
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, f"{panel['title']}: outside the grid"
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"panel '{panel['title']}' has no query"
        assert panel["description"], f"panel '{panel['title']}' has no description"
        for target in panel["targets"]:
            assert target["expr"].strip(), f"panel '{panel['title']}' has an empty query"
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_template_variables_only_in_regex_matchers(dashboard: dict[str, Any]) -> None:
    """Multi-value variables expand to `a|b`, which only a regex matcher understands."""
    names = [v["name"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            for name in names:
                for match in re.finditer(rf"(\w+)\s*(=~|!~|!=|=)\s*\"[^\"]*\${name}\b", target["expr"]):
                    assert match.group(2) in ("=~", "!~"), f"{panel['title']}: ${name} after {match.group(2)}"


def test_queries_use_only_exported_metrics_and_labels(dashboard: dict[str, Any]) -> None:
    m = RouterMetrics()
    record_sample_traffic(m)
    series = exported_series(m.registry)
    # Every family RouterMetrics defines gets samples from record_sample_traffic (the semantic test
    # below relies on it), so `series` is the complete list of names and labels the gateway exports.
    missing = defined_series(RouterMetrics()) - series.keys()
    assert not missing, f"record_sample_traffic() does not touch {sorted(missing)}"

    for title, expr in panel_queries(dashboard):
        names = set(re.findall(r"\brouter_[a-z0-9_]+", expr))
        assert names, f"{title}: query uses no router_ metric: {expr}"
        for name in names:
            assert name in series, (f"{title}: `{name}` is not exported by RouterMetrics "
                                    f"(router/observability/metrics.py): {expr}")
        for name, matchers in re.findall(r"\b(router_[a-z0-9_]+)\{([^}]*)\}", expr):
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers):
                assert label in series[name], f"{title}: `{name}` has no label `{label}`: {expr}"
        labels_in_expr = set().union(*(series[n] for n in names))
        for group in re.findall(r"\b(?:by|ignoring|on)\s*\(([^)]*)\)", expr):
            for label in filter(None, (x.strip() for x in group.split(","))):
                assert label in labels_in_expr, f"{title}: grouping label `{label}` not on {names}: {expr}"


def test_every_exported_metric_is_on_a_dashboard() -> None:
    used = {name for dashboard in map(load, NAMES) for _, expr in panel_queries(dashboard)
            for name in re.findall(r"\brouter_[a-z0-9_]+", expr)}
    families = {f.name for f in RouterMetrics().registry.collect()}
    unused = {f for f in families if not any(u == f or u.startswith(f + "_") for u in used)}
    assert not unused, f"metrics with no panel (add one in dashboards/generate.py): {sorted(unused)}"


# ---------------------------------------------------------------- Grafana's schema (TypeScript)


def _npm_ready() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        message = "node/npm not found: the Grafana schema check needs Node.js 18+ and npm"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    if not (SCHEMA_CHECK / "node_modules" / "@grafana" / "schema").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=SCHEMA_CHECK,
                       check=True, timeout=300)
    return Path(node)


def _schema_check(*files: Path) -> subprocess.CompletedProcess[str]:
    node = _npm_ready()
    return subprocess.run([str(node), "check.mjs", *map(str, files)], cwd=SCHEMA_CHECK,
                          capture_output=True, text=True, timeout=120)


def test_dashboards_match_grafana_schema() -> None:
    result = _schema_check()
    assert result.returncode == 0, f"tsc --noEmit failed:\n{result.stdout}{result.stderr}"


def test_schema_check_catches_mistakes(tmp_path: Path) -> None:
    """The structural check is not vacuous: a bad enum value and a misspelled key both fail it."""
    text = (GENERATED / "overview.json").read_text(encoding="utf-8")
    broken = text.replace('"displayMode": "list"', '"displayMode": "lists"', 1)
    head, _, tail = broken.rpartition('"legendFormat"')  # in another panel: tsc reports one per literal
    broken = f'{head}"legendFmt"{tail}'
    assert broken != text
    (tmp_path / "broken.json").write_text(broken, encoding="utf-8")
    result = _schema_check(tmp_path / "broken.json")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert '"lists"' in output and "legendFmt" in output, output


# ---------------------------------------------------------------- every query on a real Prometheus


def test_every_panel_query_returns_data_from_real_prometheus() -> None:
    """A real RouterMetrics, scraped by a real Prometheus: every panel query parses and has data."""
    metrics = RouterMetrics()
    ticks = iter(range(1_000_000))
    record_sample_traffic(metrics, next(ticks))
    queries = [(name, title, expr) for name in NAMES for title, expr in panel_queries(load(name))]

    # Each scrape records another round, so counters grow and rate() is not just zero.
    with serve_metrics(metrics.registry, before_scrape=lambda: record_sample_traffic(metrics, next(ticks))) \
            as target, start_prometheus([target], scrape_interval="1s") as prom:
        prom.wait_for_up()
        prom.wait_for_samples("router_requests_total", samples=3)
        deadline = time.monotonic() + 30
        while True:
            empty = []
            for name, title, expr in queries:
                result = prom.query(expr)  # raises with Prometheus' message if the query does not parse
                if not result:
                    empty.append(f"{name} / {title}: {expr}")
            if not empty or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert not empty, "panel queries returned no series:\n" + "\n".join(empty)
