"""The cascade's label call under a tenant's limits (issues 10/14/17): checked before, reserved, settled.

End to end: the official ``openai`` client -> a gateway with a tenants file and a cascade in its
policy -> demo upstreams on loopback, whose Kimi answers cascade calls (router/demo/labeller.py) and
counts them (``by_role["labeller"]``). Then the gate by itself, over the in-process state, to read
the reservation it holds while a request runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from router.classifier import TaskClassifier
from router.engine.admission import AdmissionQueue
from router.engine.live import LiveState
from router.exchange import Routed
from router.observability.metrics import RouterMetrics
from router.observability.tracing import Tracer
from router.pipeline.core import Pipeline
from router.policy.loader import load_policy_text
from router.tenancy import Tenant
from router.tenants import manage
from router.tenants.enforce import Admitted, Enforcer, Reservation
from router.tenants.gate import TenantGate, worst_case_usd
from router.tenants.metrics import TenantMetrics
from router.tenants.state import MemoryState
from router.tenants.store import TenantStore
from tests.conftest import Gateway, default_policy

UNSURE = {"below": 1.0, "route": "kimi:instant", "timeout_ms": 3000, "min_latency_budget_ms": 0}
CASCADE_POLICY = default_policy(classifier={"confidence_floor": 0.0, "cascade": UNSURE})
RELABELLED = [{"role": "user", "content": "What is the capital of Peru? Answer like a creative writer would."}]


def cascade_gateway(factory: Callable[..., Gateway], tmp_path: Path,
                    tenants: dict[str, Any]) -> tuple[Gateway, dict[str, str]]:
    path = tmp_path / "tenants.yaml"
    path.write_text(yaml.safe_dump({"tenants": tenants}))
    keys = {name: manage.create_key(path, name).key for name in tenants}
    gw = factory(CASCADE_POLICY, settings={"tenants_file": path, "tenants_reload_interval_s": 0.1})
    gw.demo.set_behavior("gpt", ttft_ms=0, tokens_per_s=0)  # no simulated pacing: money is under test
    return gw, keys


def labeller_calls(gw: Gateway) -> int:
    return int(gw.demo.stats("kimi")["by_role"].get("labeller") or 0)


def monthly(gw: Gateway, key: str) -> dict[str, float]:
    me = httpx.get(f"{gw.base_url}/router/tenants/me", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    return dict(me.json()["usage"][0]["monthly_budget_usd"])


def test_a_rate_limited_request_makes_no_cascade_call(gateway_factory: Callable[..., Gateway],
                                                      tmp_path: Path) -> None:
    gw, keys = cascade_gateway(gateway_factory, tmp_path, {"small": {"rpm": 1}, "broke": {"monthly_budget_usd": 0}})
    client = gw.client(api_key=keys["small"])
    first = client.chat.completions.create(model="auto", messages=RELABELLED)
    assert first.router["label_source"] == "cascade"  # type: ignore[attr-defined]
    assert labeller_calls(gw) == 1
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="auto", messages=RELABELLED)
    assert refused.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.RateLimitError) as broke:  # a spent budget: refused before the call too
        gw.client(api_key=keys["broke"]).chat.completions.create(model="auto", messages=RELABELLED)
    assert broke.value.code == "insufficient_quota"
    assert labeller_calls(gw) == 1  # counted at the upstream: neither refusal reached it


def test_the_cascade_cost_is_charged_to_the_tenant_budget(gateway_factory: Callable[..., Gateway],
                                                          tmp_path: Path) -> None:
    gw, keys = cascade_gateway(gateway_factory, tmp_path, {
        "team": {"monthly_budget_usd": 10.0},
        "local": {"monthly_budget_usd": 10.0, "self_hosted_spend": "exempt"}})
    router = gw.client(api_key=keys["team"]).chat.completions.create(
        model="gpt:default", messages=RELABELLED).router  # type: ignore[attr-defined]
    assert "cascade_cost_usd" not in router  # a named route: no label call
    named = router["cost_usd"]
    router = gw.client(api_key=keys["team"]).chat.completions.create(
        model="auto", messages=RELABELLED).router  # type: ignore[attr-defined]
    assert router["label_source"] == "cascade" and router["cascade_cost_usd"] > 0
    spent = monthly(gw, keys["team"])
    assert spent["spent"] == pytest.approx(named + router["cost_usd"] + router["cascade_cost_usd"], rel=1e-6)
    assert spent["reserved"] == 0  # settled: the reservation (cascade included) is returned
    # A tenant exempt from self-hosted spend does not pay for the label call on kimi:instant.
    router = gw.client(api_key=keys["local"]).chat.completions.create(
        model="auto", messages=RELABELLED).router  # type: ignore[attr-defined]
    assert router["label_source"] == "cascade" and router["cascade_cost_usd"] > 0
    answer = 0.0 if router["route"].startswith("kimi:") else router["cost_usd"]
    assert monthly(gw, keys["local"])["spent"] == pytest.approx(answer, abs=1e-12)
    assert labeller_calls(gw) == 2


# --- the gate by itself: what it reserves ----------------------------------------------------------
def _services(tmp_path: Path, tenants: dict[str, Any]) -> tuple[Pipeline, TenantGate, dict[str, str]]:
    env = {"KIMI_API_BASE": "http://kimi.test/v1", "OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"}
    loaded = load_policy_text(yaml.safe_dump(CASCADE_POLICY), env=env)

    class Fixed:
        current = loaded

    live = LiveState(loaded.policy)
    metrics = RouterMetrics()
    pipeline = Pipeline(policies=Fixed(), classifier=TaskClassifier.load(), live=live,
                        dispatcher=None, metrics=metrics, tracer=Tracer(None),  # type: ignore[arg-type]
                        access_log=None)  # type: ignore[arg-type]
    path = tmp_path / "tenants.yaml"
    path.write_text(yaml.safe_dump({"tenants": tenants}))
    keys = {name: manage.create_key(path, name).key for name in tenants}
    store = TenantStore(path)
    tenant_metrics = TenantMetrics(metrics, store.current.names)
    gate = TenantGate(None, store, Enforcer(MemoryState(), tenant_metrics), tenant_metrics,  # type: ignore[arg-type]
                      AdmissionQueue(max_depth=8, timeout_s=1.0), live)
    return pipeline, gate, keys


def _prepared(pipeline: Pipeline, gate: TenantGate, key: str) -> Routed:
    limits = gate.store.identify(f"Bearer {key}")
    assert limits is not None
    tenant = Tenant(limits.tenant, limits)
    body = {"model": "auto", "messages": RELABELLED, "max_tokens": 200}
    return pipeline.prepare(body, {}, tenant=tenant)


def _never(_: Routed) -> None:
    raise AssertionError("not queued")


def test_the_gate_reserves_the_cascade_estimate_with_the_answer_worst_case(tmp_path: Path) -> None:
    pipeline, gate, keys = _services(tmp_path, {"team": {"monthly_budget_usd": 10.0},
                                                "local": {"monthly_budget_usd": 10.0, "self_hosted_spend": "exempt"}})

    async def run() -> None:
        routed = _prepared(pipeline, gate, keys["team"])
        ask = pipeline.cascade.planned(routed)
        assert ask is not None and ask.route == "kimi:instant" and ask.cost_usd > 0
        policy = routed.loaded.policy
        answer_worst = worst_case_usd(policy, routed)
        admitted = await gate.admit(routed, lambda: routed, _never, cascade=pipeline.cascade.planned)
        limits = admitted.admitted.reservation.limits  # type: ignore[union-attr]
        held = (await gate.enforcer.peek(limits))[0].monthly_reserved  # type: ignore[index]
        assert held == pytest.approx(min(routed.decision.spend_limit_usd, answer_worst + ask.cost_usd))
        assert held > answer_worst
        assert admitted.admitted.allows_cascade(ask.route, ask.cost_usd)  # type: ignore[union-attr]
        # Exempt from self-hosted spend: the label call on kimi:instant reserves nothing.
        local = _prepared(pipeline, gate, keys["local"])
        await gate.admit(local, lambda: local, _never, cascade=pipeline.cascade.planned)
        limits = local.admitted.reservation.limits  # type: ignore[union-attr]
        held = (await gate.enforcer.peek(limits))[0].monthly_reserved  # type: ignore[index]
        assert held == pytest.approx(worst_case_usd(policy, local))

    asyncio.run(run())


def test_a_grant_too_small_for_the_label_call_skips_it(tmp_path: Path) -> None:
    pipeline, gate, keys = _services(tmp_path, {"thin": {"monthly_budget_usd": 1.0}})

    async def run() -> None:
        routed = _prepared(pipeline, gate, keys["thin"])
        ask = pipeline.cascade.planned(routed)
        assert ask is not None
        # Spend the budget down to the chosen route's estimate and a little: not enough for the call too.
        limits = gate.store.identify(f"Bearer {keys['thin']}")
        assert limits is not None
        left = routed.chosen.cost_usd + ask.cost_usd / 2
        burn = await gate.enforcer.admit(limits, reserve_usd=1.0 - left, need_usd=0.0, tokens=0, ttl_ms=60_000)
        burn.settle(1.0 - left, 0)
        admitted = await gate.admit(routed, lambda: routed, _never, cascade=pipeline.cascade.planned)
        assert admitted.decision.limits.max_cost_usd == pytest.approx(left)
        assert not admitted.admitted.allows_cascade(ask.route, ask.cost_usd)  # type: ignore[union-attr]
        out = await pipeline.cascade.label(admitted, lambda given: pytest.fail("no relabel"))  # type: ignore[arg-type,return-value]
        assert out is admitted and out.cascade_cost_usd == 0  # skipped: no call was made

    asyncio.run(run())


def test_a_relabelled_decision_stays_within_the_reservation(tmp_path: Path) -> None:
    pipeline, gate, keys = _services(tmp_path, {"team": {"monthly_budget_usd": 10.0}})
    routed = _prepared(pipeline, gate, keys["team"])
    assert any(not c.route.startswith("kimi:") for c in routed.decision.chain)
    limits = gate.store.identify(f"Bearer {keys['team']}")
    assert limits is not None
    reservation = Reservation(limits, 0.0, 0)
    metrics = TenantMetrics(RouterMetrics())
    only_self_hosted = Admitted(reservation, metrics, frozenset({"kimi:instant", "kimi:thinking"}),
                                cascade_usd=0.0, answer_reserved=False)
    assert not only_self_hosted.refit(routed.decision, 1.0)  # vendor routes in the chain: not reserved
    reserved = Admitted(reservation, metrics, frozenset(), cascade_usd=0.0, answer_reserved=True)
    assert reserved.refit(routed.decision, 0.003) and routed.decision.limits.max_cost_usd == 0.003
    assert reserved.refit(routed.decision, 5.0) and routed.decision.limits.max_cost_usd == 0.003  # never raised
    reserved.charge_cascade("gpt:default", 0.002)
    reserved.charge_cascade("kimi:instant", 0.5)  # counted: this tenant exempts nothing
    assert reserved.cascade_charged_usd == pytest.approx(0.502)
    only_self_hosted.charge_cascade("kimi:instant", 0.5)
    assert only_self_hosted.cascade_charged_usd == 0
