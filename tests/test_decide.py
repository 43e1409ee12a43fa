"""The pure decision: feasibility checks, reasons, objectives, spill-over, best effort, 503 vs 400."""

from __future__ import annotations

from typing import Any

import pytest

from router.engine.decide import Decision, Label, Limits, decide
from router.engine.live import LiveState
from router.engine.request_facts import RequestFacts, extract_facts
from router.engine.signals import BackendSignals, PriorSignals, RouteSignals
from router.policy.loader import load_policy_text
from router.policy.model import Policy
from tests.conftest import default_policy
from tests.support.routing import merge

ENV = {"KIMI_API_BASE": "http://kimi.test/v1", "OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"}
WIDE = Limits(max_cost_usd=1.0, latency_budget_ms=600_000)


def policy(*, env: dict[str, str] | None = None, **overrides: Any) -> Policy:
    import yaml

    return load_policy_text(yaml.safe_dump(default_policy(**overrides)), env=env or ENV).policy


def facts(text: str = "What is the capital of France?", **body: Any) -> RequestFacts:
    return extract_facts({"messages": [{"role": "user", "content": text}], **body})


class Signals(PriorSignals):
    """The policy's priors, with chosen backends' load overridden."""

    def __init__(self, pol: Policy, **load: BackendSignals) -> None:
        super().__init__(pol)
        self.load = load

    def backend(self, backend: str) -> BackendSignals:
        return self.load.get(backend, BackendSignals())


def run(pol: Policy, label: str = "simple", limits: Limits = WIDE, f: RequestFacts | None = None,
        signals: Any = None, **kw: Any) -> Decision:
    return decide(pol, f or facts(), Label(label), limits, signals or PriorSignals(pol), **kw)


def by_route(decision: Decision) -> dict[str, Any]:
    return {c.route: c for c in decision.candidates}


def test_cheapest_meeting_quality_picks_self_hosted_and_chains_the_rest_by_cost() -> None:
    d = run(policy())
    assert d.chosen is not None and d.chosen.route == "kimi:instant"
    costs = [c.cost_usd for c in d.chain]
    assert costs == sorted(costs)
    assert {c.route for c in d.chain} == {"kimi:instant", "gpt-mini:default", "gpt:default", "claude:default"}


def test_self_hosted_price_is_gpu_hour_over_throughput_not_free() -> None:
    pol = policy()
    price_in, _, price_out = pol.backends["kimi"].pricing.per_token_usd()
    assert price_out == pytest.approx(28 / 3600 / 5000)
    assert 0 < price_in < price_out
    assert by_route(run(pol))["kimi:instant"].cost_usd > 0


def test_every_failed_check_is_a_reason_with_a_sentence() -> None:
    pol = policy(backends={"claude": {"modalities": ["text"], "supports_tools": False},
                           "gpt-mini": {"context_window": 1000}}, env={**ENV, "MOONSHOT_API_KEY": "k"})
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    f = extract_facts({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "x" * 8000}, {"type": "video_url", "video_url": {"url": "http://v"}}]}],
        "tools": tools})
    d = run(pol, "vision", f=f)
    claude = by_route(d)["claude:default"]
    assert claude.reasons[:2] == ["modality", "tools"]
    assert "video" in claude.why[0]
    assert "context" in by_route(d)["gpt-mini:default"].reasons
    assert d.chosen is not None and d.chosen.backend == "kimi-api"  # the only video-capable backend
    for cand in d.candidates:
        assert len(cand.reasons) == len(cand.why)


def test_tight_latency_budget_picks_instant_over_thinking_on_a_kimi_only_pool() -> None:
    pol = policy(backends={b: {"enabled": False} for b in ("gpt", "gpt-mini", "claude")})
    roomy = run(pol, "reasoning")
    assert roomy.chosen is not None and roomy.chosen.route == "kimi:thinking"
    tight = run(pol, "reasoning", Limits(1.0, 20_000))
    assert tight.chosen is not None and tight.chosen.route == "kimi:instant"
    assert by_route(tight)["kimi:thinking"].reasons == ["latency"]


def test_objectives() -> None:
    fastest = run(policy(objective="fastest"))
    assert fastest.chosen is not None
    assert fastest.chosen.latency_ms == min(c.latency_ms for c in fastest.candidates)
    assert [c.latency_ms for c in fastest.chain] == sorted(c.latency_ms for c in fastest.chain)
    best = run(policy(objective="best_quality_within_budget"), "reasoning")
    assert best.chosen is not None and best.chosen.route == "gpt:default"  # 0.96, the best prior


def test_ceiling_below_every_estimate_is_infeasible_and_names_each_candidate() -> None:
    d = run(policy(), limits=Limits(1e-9, 600_000))
    assert d.chosen is None and not d.unavailable
    message = d.explain_rejections()
    for route in ("kimi:instant", "gpt-mini:default", "gpt:default", "claude:default"):
        assert f"{route} (cost: est. $" in message


def test_best_effort_takes_the_cheapest_and_lifts_the_spend_limit_to_its_estimate() -> None:
    d = run(policy(on_infeasible="best_effort"), limits=Limits(1e-9, 600_000))
    assert d.best_effort and d.chosen is not None and d.chosen.route == "kimi:instant"
    assert d.spend_limit_usd == pytest.approx(max(c.cost_usd for c in d.chain))  # a fallback can be paid too


def test_open_circuits_and_saturation_give_unavailable_not_infeasible() -> None:
    pol = policy()
    everything_open = Signals(pol, **{b: BackendSignals(circuit="open") for b in pol.backends})
    d = run(pol, signals=everything_open)
    assert d.chosen is None and d.unavailable
    # The cheap route is down and the others cost too much: it would fit once back -> still 503.
    kimi_open = Signals(pol, kimi=BackendSignals(circuit="open"))
    d = run(pol, limits=Limits(0.0005, 600_000), signals=kimi_open)
    assert d.chosen is None and d.unavailable
    assert "circuit of kimi is open" in d.explain_rejections()


def test_full_engine_queue_spills_while_the_ceiling_allows_and_queues_when_it_does_not() -> None:
    pol = policy()
    full = Signals(pol, kimi=BackendSignals(queue_waiting=40))
    spilled = run(pol, signals=full)
    assert spilled.chosen is not None and spilled.chosen.backend != "kimi"
    assert by_route(spilled)["kimi:instant"].reasons == ["capacity"]
    # A ceiling only Kimi fits: queue there rather than refuse.
    kept = run(pol, limits=Limits(0.0005, 600_000), signals=full)
    assert kept.chosen is not None and kept.chosen.route == "kimi:instant"
    assert "queued here" in kept.chosen.details[0]


def test_in_flight_cap_is_a_hard_limit() -> None:
    pol = policy()
    busy = Signals(pol, kimi=BackendSignals(inflight=64))
    d = run(pol, limits=Limits(0.0005, 600_000), signals=busy)
    assert d.chosen is None and d.unavailable


def test_queue_wait_counts_in_the_latency_estimate() -> None:
    pol = policy()
    live = LiveState(pol)
    idle = by_route(run(pol, signals=live))["kimi:instant"].latency_ms
    live.set_queue("kimi", waiting=4, running=2, kv_usage=0.5)
    queued = by_route(run(pol, signals=live))["kimi:instant"].latency_ms
    assert queued > idle + 1000


def test_client_max_tokens_bounds_estimates() -> None:
    pol = policy()
    small = by_route(run(pol, "reasoning", f=facts(max_tokens=100)))["kimi:thinking"]
    assert small.output_tokens + small.reasoning_tokens <= 100


def test_tool_definitions_count_as_input() -> None:
    tools = [{"type": "function", "function": {"name": f"tool_{i}", "description": "d" * 400,
                                               "parameters": {"type": "object"}}} for i in range(10)]
    assert facts(tools=tools).input_tokens > facts().input_tokens + 1000


def test_decision_is_replayable() -> None:
    pol = policy()
    signals = Signals(pol, kimi=BackendSignals(queue_waiting=3, queue_wait_ms=1200))
    first = run(pol, "coding", signals=signals)
    again = run(pol, "coding", signals=signals)
    assert [c.as_dict() for c in first.candidates] == [c.as_dict() for c in again.candidates]


def test_live_estimates_relax_back_to_the_prior_when_stale() -> None:
    now = [0.0]
    pol = policy()
    live = LiveState(pol, clock=lambda: now[0])
    for _ in range(20):
        live.observe_latency("kimi:instant", ttft_ms=5000, output_tokens=0, generation_s=None)
    assert live.route("kimi:instant").ttft_ms > 4000
    now[0] += 60 + 600  # ten half-lives after going stale
    assert live.route("kimi:instant").ttft_ms == pytest.approx(400, abs=10)


def test_non_streamed_totals_are_learned() -> None:
    pol = policy()
    live = LiveState(pol)
    before = live.route("kimi:instant")
    for _ in range(10):
        live.observe_total("kimi:instant", total_ms=10_000, output_tokens=100)
    after = live.route("kimi:instant")
    assert after.ttft_ms + 100 / after.output_tokens_per_s * 1000 == pytest.approx(10_000, rel=0.1)
    assert after != before


def test_live_state_answers_for_routes_a_reload_removed() -> None:
    pol = policy()
    live = LiveState(pol)
    live.apply_policy(policy(backends={"claude": {"enabled": False}}))
    smaller = Policy.model_validate(merge(pol.model_dump(), {}) | {
        "backends": {k: v for k, v in pol.model_dump()["backends"].items() if k != "claude"},
        "tasks": {t: {"candidates": [r for r in rule["candidates"] if not r.startswith("claude")]}
                  for t, rule in pol.model_dump()["tasks"].items()}})
    live.apply_policy(smaller)
    assert isinstance(live.route("claude:default"), RouteSignals)
    assert live.breaker("claude").state == "closed"
    assert live.route("nowhere:default").ttft_ms > 0
