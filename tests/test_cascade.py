"""The cascade for unsure labels (issue 17 item 4) and ``router.label_source``.

Unit tests of the pure parts (when to ask, whether the call fits, parsing the reply; the clock is
passed by hand), then end to end: the official ``openai`` client -> gateway -> demo Kimi, which
answers a cascade call with the first offered label named in the request (router/demo/labeller.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from router.classifier import TaskClassifier
from router.demo import labeller
from router.engine.decide import Label, estimate_route
from router.engine.label_source import label_source
from router.engine.live import LiveState
from router.exchange import Routed
from router.observability.metrics import RouterMetrics
from router.observability.tracing import Tracer
from router.pipeline import cascade
from router.pipeline.core import Pipeline
from router.policy.loader import PolicyError, load_policy_text
from router.policy.model import CascadeSettings
from tests.conftest import Gateway, default_policy

LABELS = ("simple", "reasoning", "coding", "agentic", "decomposable", "creative", "long_context")
ENV = {"KIMI_API_BASE": "http://kimi.test/v1", "OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"}
UNSURE = {"below": 1.0, "route": "kimi:instant", "timeout_ms": 3000, "min_latency_budget_ms": 0}


# --- pure parts -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("reply", "label"), [
    ("coding", "coding"), ("Coding.", "coding"), ("`creative`", "creative"), ("**agentic**", "agentic"),
    ("long context", "long_context"), ("Long_Context", "long_context"), ("coding is the label", "coding"),
    ("decompos", "decomposable"),  # cut short by max_tokens: a unique prefix of 4+ characters
    ("sim", None), ("unsure", None), ("", None), ("The request", None), ("42", None),
])
def test_parse_label(reply: str, label: str | None) -> None:
    assert cascade.parse_label(reply, LABELS) == label


def _pipeline(policy_yaml: str) -> Pipeline:
    loaded = load_policy_text(policy_yaml, env=ENV)

    class Fixed:
        current = loaded

    return Pipeline(policies=Fixed(), classifier=TaskClassifier.load(), live=LiveState(loaded.policy),
                    dispatcher=None, metrics=RouterMetrics(), tracer=Tracer(None),  # type: ignore[arg-type]
                    access_log=None)  # type: ignore[arg-type]


def _policy_yaml(**cascade_cfg: Any) -> str:
    import yaml

    return yaml.safe_dump(default_policy(classifier={"cascade": {**UNSURE, **cascade_cfg}}))


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return _pipeline(_policy_yaml())


def _routed(pipeline: Pipeline, text: str, *, arrived: float = 100.0, headers: dict[str, str] | None = None,
            **router: Any) -> Routed:
    body = {"model": "auto", "messages": [{"role": "user", "content": text}], "router": router}
    return pipeline.prepare(body, headers or {}, arrived=arrived, dry_run=True)


def test_only_unsure_model_labels_of_auto_requests_are_asked(pipeline: Pipeline) -> None:
    cfg = CascadeSettings(**UNSURE)
    plain = _routed(pipeline, "What is the capital of Peru?")
    assert plain.rule is None and cascade.wanted(plain, cfg)
    assert not cascade.wanted(plain, None)  # off unless the policy has classifier.cascade
    sure = CascadeSettings(**{**UNSURE, "below": max(plain.probabilities.values())})
    assert not cascade.wanted(plain, sure)  # confident enough
    header = _routed(pipeline, "What is the capital of Peru?", headers={"x-router-task-type": "simple"})
    assert label_source(header.rule) == "header" and not cascade.wanted(header, cfg)
    body = {"model": "auto", "messages": [{"role": "user", "content": "Describe this"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}
    tooled = pipeline.prepare(body, {}, arrived=100.0, dry_run=True)
    assert label_source(tooled.rule) == "rule" and not cascade.wanted(tooled, cfg)
    named = pipeline.prepare({"model": "gpt:default", "messages": [{"role": "user", "content": "hi"}]}, {},
                             arrived=100.0, dry_run=True)
    assert not cascade.wanted(named, cfg)  # the client named the route


def test_the_call_is_planned_only_when_it_fits_the_budget_and_the_ceiling(pipeline: Pipeline) -> None:
    cfg = CascadeSettings(**{**UNSURE, "timeout_ms": 300, "min_latency_budget_ms": 2000})
    routed = _routed(pipeline, "What is the capital of Peru?", arrived=100.0, latency_budget_ms=60_000)
    ask = cascade.plan(routed, cfg, pipeline.live, now=100.0)
    assert isinstance(ask, cascade.Ask)
    assert ask.body["max_tokens"] == cfg.max_tokens and ask.body["temperature"] == 0
    assert ask.labels == tuple(routed.probabilities)
    assert ask.body["messages"][0]["content"].startswith(cascade.MARKER)
    assert ask.body["messages"][1]["content"] == "What is the capital of Peru?"
    # priced with the policy's prices: the cascade route's estimate for that body and 4 output tokens
    expected = estimate_route(routed.loaded.policy, "kimi:instant", ask.facts, Label("simple"), pipeline.live,
                              output_tokens=cfg.max_tokens)
    assert ask.candidate.cost_usd == expected.cost_usd > 0
    # a budget under min_latency_budget_ms
    patient = CascadeSettings(**{**UNSURE, "timeout_ms": 300, "min_latency_budget_ms": 60_001})
    assert cascade.plan(routed, patient, pipeline.live, now=100.0) == "skipped_latency"
    # the time already spent leaves no room for the timeout + the chosen route's latency
    spent = (60_000 - 300 - routed.chosen.latency_ms + 1) / 1000
    assert cascade.plan(routed, cfg, pipeline.live, now=100.0 + spent) == "skipped_latency"
    assert isinstance(cascade.plan(routed, cfg, pipeline.live, now=100.0 + spent - 0.002), cascade.Ask)
    # the ceiling: the chosen route's estimate + the call's must fit
    tight = _routed(pipeline, "What is the capital of Peru?", arrived=100.0,
                    max_cost_usd=routed.chosen.cost_usd + expected.cost_usd / 2)
    assert tight.chosen.route == routed.chosen.route
    assert cascade.plan(tight, cfg, pipeline.live, now=100.0) == "skipped_cost"


def test_a_long_request_is_cut_to_its_head_and_tail(pipeline: Pipeline) -> None:
    text = "start " + "x" * 5000 + " end"
    routed = _routed(pipeline, text)
    cut = cascade.prompt_text(routed, 1000)
    assert len(cut) <= 1010 and cut.startswith("start ") and cut.endswith(" end")


def test_the_policy_names_a_route_that_exists() -> None:
    with pytest.raises(PolicyError, match=r"classifier\.cascade\.route"):
        load_policy_text(_policy_yaml(route="kimi:nonsense"), env=ENV)


def test_demo_labeller_answers_the_first_offered_label_named_in_the_request() -> None:
    system = cascade.cascade_body(LABELS, "", 4)["messages"][0]["content"]
    assert labeller.is_labeller_call(system) and labeller.offered_labels(system) == list(LABELS)
    assert labeller.label_reply(system, "Is this a creative task or a coding one?") == "coding"
    assert labeller.label_reply(system, "a long context question") == "long_context"
    assert labeller.label_reply(system, "What is the capital of Peru?") == labeller.UNSURE


# --- end to end ---------------------------------------------------------------------------------------
def _ask(gw: Gateway, text: str, **kwargs: Any) -> dict[str, Any]:
    reply = gw.client().chat.completions.create(model="auto", messages=[{"role": "user", "content": text}], **kwargs)
    extra = reply.model_extra or {}
    return dict(extra["router"])


def _count(gw: Gateway, metric: Any, label: str) -> float:
    return float(sum(s.value for m in metric.collect() for s in m.samples
                     if s.name.endswith("_total") and label in s.labels.values()))


def _total(metric: Any) -> float:
    return float(sum(s.value for m in metric.collect() for s in m.samples if s.name.endswith("_total")))


def test_an_unsure_label_is_replaced_by_the_cascade_route_answer(
        gateway_factory: Callable[..., Gateway], tmp_path: Any) -> None:
    gw = gateway_factory(default_policy(classifier={"confidence_floor": 0.0, "cascade": UNSURE}),
                         settings={"decision_log": str(tmp_path / "d.jsonl")})
    router = _ask(gw, "What is the capital of Peru? Answer like a creative writer would.")
    assert router["label_source"] == "cascade" and router["task_type"] == "creative"
    assert router["cascade_cost_usd"] > 0
    assert gw.demo.stats("kimi")["by_role"].get("labeller") == 1
    # the cascade's cost came off the ceiling the answer may spend
    assert router["max_cost_usd"] == pytest.approx(1.0 - router["cascade_cost_usd"])
    m = gw.services.metrics
    assert _count(gw, m.cascade, "relabelled") == 1 and _count(gw, m.label_source, "cascade") == 1
    assert _total(m.cascade_cost) == pytest.approx(router["cascade_cost_usd"], rel=1e-3)
    gw.services.recorder.log.flush()
    record = orjson.loads((tmp_path / "d.jsonl").read_bytes().splitlines()[-1])
    assert record["label_source"] == "cascade" and record["task_type"] == "creative"
    assert record["rule"].startswith("cascade:") and record["top_task_type"] is not None
    assert record["cascade_cost_usd"] == pytest.approx(router["cascade_cost_usd"], rel=1e-3)


def test_an_unparseable_or_late_answer_keeps_the_model_label(gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(default_policy(classifier={"confidence_floor": 0.0, "cascade": {**UNSURE, "timeout_ms": 300}}))
    question = "What is the capital of Peru?"
    router = _ask(gw, question)  # the demo says "unsure"
    assert router["label_source"] == "model" and router["task_type"] != "creative"
    model_label = router["task_type"]
    assert _count(gw, gw.services.metrics.cascade, "unparseable") == 1
    # The cascade route is slower than the timeout: the request goes on with the model's label.
    gw.demo.set_behavior("kimi", ttft_ms=1500)
    router = _ask(gw, question + " Answer like a creative writer would.")
    assert router["label_source"] == "model" and router["task_type"] == model_label
    assert "cascade_cost_usd" in router  # a call we stopped waiting for may still be billed: its estimate
    assert _count(gw, gw.services.metrics.cascade, "timeout") == 1
    assert gw.demo.stats("kimi")["by_role"].get("labeller") == 2


def test_label_source_is_in_every_answer(gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory()  # the packaged policy: no cascade
    assert _ask(gw, "What is the capital of Peru?")["label_source"] == "model"
    forced = httpx.post(f"{gw.url}/v1/chat/completions", headers={"authorization": "Bearer k",
                                                                  "x-router-task-type": "coding"},
                        json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert forced.status_code == 200 and forced.json()["router"]["label_source"] == "header"
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    assert _ask(gw, "Look it up", tools=tools)["label_source"] == "rule"
    assert gw.demo.stats("kimi")["by_role"].get("labeller") is None
