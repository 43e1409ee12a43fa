"""Per-subtask routing (router/swarm/routing.py) with the real classifier and the packaged policy."""

from __future__ import annotations

from typing import Any

from router.engine.live import LiveState
from router.engine.request_facts import extract_facts
from router.policy.loader import load_policy_file
from router.settings import PACKAGED_POLICY
from router.swarm.plan import Subtask
from router.swarm.prompts import worker_messages
from router.swarm.routing import Shares, route_subtasks, shares

ENV = {"KIMI_API_BASE": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"}
TOOLS = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}]


def facts_of(subtask: Subtask) -> Any:
    return extract_facts({"messages": worker_messages([(subtask.id, subtask.instruction)], "req", [], tools=True),
                          "tools": TOOLS})


def test_shares_split_money_evenly_and_time_over_waves() -> None:
    assert shares(1.0, 60_000, 10, 32, 1) == Shares(0.1, 60_000)
    assert shares(1.0, 60_000, 10, 5, 1) == Shares(0.1, 30_000)  # two waves
    assert shares(1.0, 60_000, 10, 32, 3) == Shares(0.1, 20_000)  # three dependency levels
    assert shares(-1.0, -5, 0, 0, 0) == Shares(0.0, 0.0)


def test_kinds_of_subtasks_get_their_own_routes_and_worker_is_the_default(classifier: Any) -> None:
    policy = load_policy_file(PACKAGED_POLICY, env=ENV).policy
    live = LiveState(policy)
    subtasks = [Subtask("t1", "Lisbon population"), Subtask("t2", "Prove that there are infinitely many primes"),
                Subtask("t3", "Fix the off-by-one bug in this Python loop: for i in range(len(xs)+1): xs[i]"),
                Subtask("t4", "Research each of these 12 companies: Apple, Microsoft, Google and Amazon")]
    routes = route_subtasks(policy, subtasks, classifier, live, Shares(0.08, 130_000), facts_of)
    assert routes["t1"].label.task_type == "simple" and routes["t1"].route == "kimi:instant"
    assert routes["t2"].label.task_type == "reasoning" and routes["t2"].route == "kimi:thinking"
    assert routes["t3"].label.task_type == "coding"
    assert routes["t4"].label.task_type != "decomposable" and routes["t4"].route != "swarm"  # never nested
    # A share nothing fits: the default worker route, and why.
    starved = route_subtasks(policy, subtasks[:1], classifier, live, Shares(0.0, 1.0), facts_of)
    assert starved["t1"].route == policy.swarm.worker and "no route fits its share" in starved["t1"].why
    # Routing off: every subtask on swarm.worker.
    off = policy.model_copy(update={"swarm": policy.swarm.model_copy(update={"route_subtasks": False})})
    assert {r.route for r in route_subtasks(off, subtasks, classifier, live, Shares(1, 1e6), facts_of).values()} \
        == {policy.swarm.worker}
