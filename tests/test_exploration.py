"""Exploration in the pure decision: the draw comes from the caller, the propensity is exact, the
ceiling and budget are never broken, and a logged decision replays to the same route."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from router.engine.decide import Label, Limits, decide
from router.engine.signals import BackendSignals, RouteSignals
from tests.test_decide import WIDE, facts, policy


class Varying:
    """Live-looking signals: a slow route and a busy backend."""

    def route(self, route: str) -> RouteSignals:
        return RouteSignals(1234.5 if route.startswith("gpt") else 321.0, 47.5)

    def backend(self, backend: str) -> BackendSignals:
        return BackendSignals(inflight=3 if backend == "kimi" else 0, queue_waiting=2.0 if backend == "kimi" else None,
                              queue_wait_ms=80.0 if backend == "kimi" else 0.0)


def test_without_a_draw_the_decision_is_greedy_with_propensity_one() -> None:
    d = decide(policy(exploration={"rate": 0.1}), facts(), Label("simple"), WIDE, Varying())
    assert d.chosen is not None and d.chosen.route == "kimi:instant"
    assert d.propensity == 1.0 and not d.explored


def test_draws_above_the_rate_keep_the_greedy_choice_with_its_propensity() -> None:
    d = decide(policy(exploration={"rate": 0.1}), facts(), Label("simple"), WIDE, Varying(), explore_draw=0.5)
    assert d.chosen is not None and d.chosen.route == "kimi:instant"
    assert d.propensity == pytest.approx(0.9) and not d.explored


def test_exploration_spreads_uniformly_over_the_other_feasible_candidates() -> None:
    pol = policy(exploration={"rate": 0.2})
    picks: Counter[str] = Counter()
    for i in range(2000):
        d = decide(pol, facts(), Label("simple"), WIDE, Varying(), explore_draw=i / 2000)
        assert d.chosen is not None
        picks[d.chosen.route] += 1
        if d.explored:
            assert d.propensity == pytest.approx(0.2 / 3)
            assert [c.route for c in d.chain].count(d.chosen.route) == 1 and len(d.chain) == 4
    assert picks["kimi:instant"] == 1600
    assert sorted(picks[r] for r in ("gpt-mini:default", "gpt:default", "claude:default")) == [133, 133, 134]


def test_exploration_never_breaks_the_ceiling() -> None:
    pol = policy(exploration={"rate": 0.5})
    tight = Limits(max_cost_usd=0.002, latency_budget_ms=600_000)  # kimi:instant and gpt-mini fit
    seen = set()
    for i in range(200):
        d = decide(pol, facts(), Label("simple"), tight, Varying(), explore_draw=i / 200)
        assert d.chosen is not None and d.chosen.cost_usd <= 0.002
        seen.add(d.chosen.route)
    assert seen == {"kimi:instant", "gpt-mini:default"}


def test_a_forced_route_or_mode_is_never_explored() -> None:
    pol = policy(exploration={"rate": 0.5})
    d = decide(pol, facts(), Label("simple"), WIDE, Varying(), direct_route="gpt:default", explore_draw=0.01)
    assert d.chosen is not None and d.chosen.route == "gpt:default" and d.propensity == 1.0
    d = decide(pol, facts(), Label("simple"), WIDE, Varying(), forced_mode="thinking", explore_draw=0.01)
    assert not d.explored and d.propensity == 1.0


@pytest.mark.parametrize("draw", [None, 0.01, 0.05, 0.3])
def test_the_signals_read_replay_to_the_same_decision(draw: Any) -> None:
    from router.engine.signals import PriorSignals
    from router.tuning.record import RecordedSignals

    pol = policy(exploration={"rate": 0.1})
    d = decide(pol, facts(), Label("simple"), WIDE, Varying(), explore_draw=draw)
    assert d.signals_used is not None
    logged = {"routes": {r: [s.ttft_ms, s.output_tokens_per_s] for r, s in d.signals_used.routes.items()},
              "backends": {b: [s.circuit, s.inflight, s.queue_waiting, s.queue_wait_ms]
                           for b, s in d.signals_used.backends.items()}}
    again = decide(pol, facts(), Label("simple"), WIDE, RecordedSignals(logged, PriorSignals(pol)), explore_draw=draw)
    assert again.chosen is not None and d.chosen is not None
    assert (again.chosen.route, again.propensity, [c.latency_ms for c in again.candidates]) == \
        (d.chosen.route, d.propensity, [c.latency_ms for c in d.candidates])
