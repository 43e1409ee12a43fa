"""The gateway's /metrics: every DESIGN.md name present, a clean exposition (``promtool check
metrics``), label values only from closed sets, and an overhead metric that measures the gateway and
not its upstreams."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from router import taxonomy
from router.engine.label_source import LABEL_SOURCES
from router.pipeline.cascade import OUTCOMES as CASCADE_OUTCOMES
from tests.conftest import Gateway, default_policy
from tests.support.prometheus import find_binary

DESIGN_NAMES = (  # DESIGN.md "Metrics": at least these
    "router_requests_total", "router_request_duration_seconds", "router_time_to_first_token_seconds",
    "router_overhead_seconds", "router_decision_duration_seconds", "router_classifier_confidence",
    "router_tokens_total", "router_cost_usd_total", "router_fallbacks_total", "router_route_rejections_total",
    "router_upstream_errors_total", "router_backend_circuit_state", "router_backend_inflight",
    "router_swarm_agents", "router_swarm_duration_seconds", "router_swarm_parallel_efficiency",
)
ERROR_KINDS = {"http_5xx", "http_4xx", "rate_limited", "timeout", "connection", "protocol", "circuit_open",
               "mid_stream"}
REJECTION_REASONS = {"context", "modality", "tools", "mode", "circuit_open", "capacity", "cost", "latency",
                     "disabled", "quality"}
DECISION_LOG_DROPS = {"queue_full", "write_error", "render_error"}
TENANT_REASONS = {"not_allowed", "rate_limit_requests", "rate_limit_tokens", "budget", "queue_timeout",
                  "state_unavailable"}
STATUSES = {"ok", "client_error", "rate_limited", "upstream_error", "timeout", "infeasible", "cancelled"}
PROMPT = "Explain why the sky is blue. Marker: NARWHAL-CITRINE-2210."


def closed_sets(policy: dict[str, Any]) -> dict[str, set[str]]:
    """label name -> every value it may take, from the policy and the code's closed sets."""
    routes = {f"{b}:{m}" for b, spec in policy["backends"].items()
              for m in (spec.get("modes") or [taxonomy.DEFAULT_MODE])} | {taxonomy.SWARM_ROUTE}
    return {
        "route": routes | {"none"}, "from_route": routes, "to_route": routes, "shadow_route": routes | {"none"},
        "backend": set(policy["backends"]),
        "task_type": set(taxonomy.TASK_TYPES),
        "mode": set(taxonomy.MODES) | {taxonomy.DEFAULT_MODE, "none"},
        "status": STATUSES | {"rejected"},  # rejected: refused for a tenant's limits
        "api": set(taxonomy.APIS),
        "kind": ERROR_KINDS,
        "reason": REJECTION_REASONS | ERROR_KINDS | DECISION_LOG_DROPS | TENANT_REASONS,
        "direction": {"input", "output", "reasoning"},
        "outcome": {"met", "missed", "admitted", "timeout"} | set(CASCADE_OUTCOMES),  # budget; admission; cascade
        "result": {"applied", "rejected"},
        "name": {policy["name"]}, "version": {str(policy["version"])},
        "le": set(),  # histogram buckets: numbers, checked apart
        # tenants (issue 14): names from the tenants file (none here: auth off is the tenant `default`)
        "tenant": {"default", "other"}, "period": {"day", "month"},
        # labelling (issue 17): which path labelled a request; the cascade's outcomes
        "source": set(LABEL_SOURCES),
    }


def scrape(gw: Gateway) -> str:
    return httpx.get(f"{gw.url}/metrics", timeout=10).text


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def value(text: str, name: str, **labels: str) -> float:
    return sum(v for n, ls, v in samples(text) if n == name and all(ls.get(k) == x for k, x in labels.items()))


def mixed_traffic(gw: Gateway) -> None:
    """A bit of everything that creates label values: routes, modes, streams, failures, rejections."""
    client = gw.client()
    messages = [{"role": "user", "content": PROMPT}]
    for task_type in ("simple", "reasoning", "coding", "agentic", "creative"):
        client.chat.completions.create(model="auto", messages=messages,
                                       extra_headers={"X-Router-Task-Type": task_type})
    client.chat.completions.create(model="auto", messages=messages)  # classified
    list(client.chat.completions.create(model="claude:default", messages=messages, stream=True))
    list(client.chat.completions.create(model="kimi:thinking", messages=messages, stream=True))
    gw.demo.set_behavior("kimi", error_rate=1.0)
    client.chat.completions.create(model="auto", messages=messages, extra_headers={"X-Router-Task-Type": "simple"})
    gw.demo.set_behavior("kimi", error_rate=0.0)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="auto", messages=messages,
                                       extra_headers={"X-Router-Max-Cost": "0.0000001"})


def test_exposition_names_labels_and_promtool(gateway_factory: Callable[..., Gateway]) -> None:
    policy = default_policy()
    gw = gateway_factory(policy)
    mixed_traffic(gw)
    text = scrape(gw)

    names = {family.name for family in text_string_to_metric_families(text)}
    for name in DESIGN_NAMES:  # the parser strips _total from counter family names
        assert name.removesuffix("_total") in names, f"{name} is not exported"

    allowed = closed_sets(policy)
    seen: dict[str, set[str]] = {}
    for name, labels, _ in samples(text):
        if not name.startswith("router_"):
            continue
        for label, val in labels.items():
            assert label in allowed, f"{name}: label `{label}` has no closed set of values"
            seen.setdefault(label, set()).add(val)
            if label == "le":
                assert val == "+Inf" or float(val) >= 0, f"{name}: bucket {val}"
            else:
                assert val in allowed[label], f"{name}{{{label}={val!r}}} is outside the closed set"
    # The traffic really produced labelled series (so the loop above checked something).
    assert {"route", "task_type", "mode", "status", "backend", "kind", "reason", "direction"} <= seen.keys()
    assert "NARWHAL" not in text

    promtool = find_binary("promtool")
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, f"promtool check metrics:\n{result.stdout}{result.stderr}"


def test_outcomes_are_counted_once_per_request(gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(default_policy())
    mixed_traffic(gw)
    text = scrape(gw)
    # 9 answered + 1 infeasible; the duration histogram counts answered requests only.
    assert value(text, "router_requests_total") == 10
    assert value(text, "router_requests_total", status="infeasible", route="none") == 1
    assert value(text, "router_request_duration_seconds_count") == 9
    assert value(text, "router_overhead_seconds_count") == 9
    assert value(text, "router_time_to_first_token_seconds_count") == 2  # the two streams
    assert value(text, "router_fallbacks_total") >= 1
    assert value(text, "router_upstream_errors_total", backend="kimi", kind="http_5xx") >= 1
    assert value(text, "router_tokens_total", direction="input") > 0
    assert value(text, "router_cost_usd_total") > 0


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_overhead_excludes_upstream_time(gateway_factory: Callable[..., Gateway], stream: bool) -> None:
    """A slow upstream makes requests slow, not the gateway's overhead; nor does a failed attempt."""
    policy = default_policy(retry={"attempts_per_route": 1},
                            backends={"kimi": {"timeout_s": 0.4}})  # a hang becomes a timeout
    gw = gateway_factory(policy)
    gw.demo.set_behavior("gpt", ttft_ms=300)
    gw.demo.set_behavior("claude", ttft_ms=300)
    client = gw.client()
    messages = [{"role": "user", "content": PROMPT}]
    for model in ("gpt:default", "claude:default"):
        response = client.chat.completions.create(model=model, messages=messages, stream=stream)
        if stream:
            list(response)
    # A fallback whose first attempt hangs until the 0.4 s timeout, then a 300 ms answer.
    gw.demo.set_behavior("kimi", timeout_rate=1.0, hang_s=5)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=messages, stream=stream, extra_headers={"X-Router-Task-Type": "simple"})
    if stream:
        list(raw.parse())
    assert int(raw.headers["x-router-fallbacks"]) >= 1

    text = scrape(gw)
    count = value(text, "router_overhead_seconds_count")
    assert count == 3
    total = value(text, "router_request_duration_seconds_sum")
    overhead = value(text, "router_overhead_seconds_sum")
    assert total >= 3 * 0.3 + 0.4  # the upstreams' time is in the duration...
    assert overhead / count < 0.05, f"mean overhead {overhead / count:.3f}s of mean duration {total / count:.3f}s"
    assert value(text, "router_overhead_seconds_bucket", le="0.1") == count  # ...not in the overhead
