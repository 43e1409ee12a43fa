"""A cascade for the uncertain: when the classifier is unsure, a cheap route names the label.

Off unless the policy has ``classifier.cascade``. After ``prepare`` (classify + decide), a request
whose label came from the learned model (no structural rule, no client header) with a top
probability below ``cascade.below`` asks ``cascade.route`` (e.g. ``kimi:instant``) for the label:
one system prompt listing the model's labels, the request's text (cut to ``max_prompt_chars``),
``max_tokens`` 1-8 at temperature 0. The answer is parsed to one label; anything else keeps the
model's label. The call goes through the same dispatcher as any route (dialects, retries, circuit
breakers, live latency all apply) and is skipped when it would not fit:

- the request's latency budget is under ``min_latency_budget_ms``, or the time already spent +
  ``timeout_ms`` + the chosen route's estimated latency would not fit in it;
- the call's cost, estimated with the policy's prices (``estimate_route``), + the chosen route's
  estimate would break the request's ceiling.

A new label is decided again (``relabel``: ``Pipeline.prepare`` with the label given). The
cascade's cost (actual, or the estimate when it timed out) is taken off the ceiling the answer may
spend, shown as ``cascade_cost_usd`` and counted in ``router_cascade_cost_usd_total``. It never
fails the request: a timeout, an upstream error or a new decision that no longer fits keeps the
model's label and decision (each counted in ``router_cascade_total{outcome}``).

With tenants, the call comes *after* the tenant's admission (``TenantGate.admit``): a request its
rate limit or budget refuses makes no call. The admission reserves the call's estimate (``planned``)
with the answer's worst case, unless the route is self-hosted and the tenant exempts that spend; a
grant too small for it skips the call (``skipped_cost``). Its cost is settled with the answer's
(``Admitted.charge_cascade``), and a new decision stays within what the admission reserved
(``Admitted.refit``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from router.engine.decide import Candidate, Label, Limits, estimate_route
from router.engine.label_source import CASCADE_PREFIX, label_source, model_labelled
from router.engine.request_facts import RequestFacts, extract_facts
from router.observability.metrics import RouterMetrics
from router.observability.tracing import Tracer

if TYPE_CHECKING:
    from router.dispatch.executor import Dispatcher
    from router.engine.signals import Signals
    from router.exchange import Routed
    from router.policy.model import CascadeSettings

log = logging.getLogger("router.cascade")

# The system prompt's first words: the demo upstream recognises a cascade call by them
# (router/demo/labeller.py), as it recognises swarm roles.
MARKER: Final = "model-router labeller."
# One line per label so a small model can tell them apart (definitions: classifiers/README.md).
MEANINGS: Final = {
    "simple": "a short factual answer, look-up, extraction or explanation",
    "reasoning": "math, logic or analysis that needs step-by-step thinking",
    "coding": "writing, fixing or explaining code",
    "agentic": "acting in an environment: commands, websites, apps, multi-step tasks",
    "decomposable": "several independent parts that could be done in parallel",
    "creative": "stories, poems, marketing copy, role play",
    "long_context": "a long document to read, summarise or answer questions about",
}
_WORD: Final = re.compile(r"[a-z]+(?:_[a-z]+)*")
OUTCOMES: Final = ("relabelled", "confirmed", "unparseable", "timeout", "error", "over_limits",
                   "skipped_cost", "skipped_latency", "skipped_unavailable")


@dataclass(frozen=True, slots=True)
class Ask:
    """A cascade call that fits the request: what to send and what it is estimated to cost."""

    body: dict[str, Any]
    facts: RequestFacts
    candidate: Candidate
    labels: tuple[str, ...]
    top: str  # the model's own top label
    top_probability: float


def wanted(routed: Routed, cfg: CascadeSettings | None) -> bool:
    """Unsure, labelled by the learned model, for an ``auto`` request that has a decision."""
    if cfg is None or not routed.probabilities or not model_labelled(routed.rule):
        return False
    model = str(routed.body.get("model") or "auto")
    if model != "auto" and not model.startswith("auto:"):  # the client named a route: the label barely matters
        return False
    if routed.decision.chosen is None or routed.decision.best_effort:
        return False
    return max(routed.probabilities.values()) < cfg.below


def prompt_text(routed: Routed, max_chars: int) -> str:
    """The request's user text, its head and tail when longer than ``max_chars``."""
    parts: list[str] = []
    for message in routed.body.get("messages") or ():
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    text = "\n\n".join(p for p in parts if p)
    if len(text) <= max_chars:
        return text
    half = max_chars // 2
    return f"{text[:half]}\n[…]\n{text[-half:]}"


def cascade_body(labels: tuple[str, ...], text: str, max_tokens: int) -> dict[str, Any]:
    """An OpenAI chat body (the dispatcher turns it into each upstream's dialect)."""
    lines = "\n".join(f"- {label}: {MEANINGS.get(label, label)}" for label in labels)
    system = (f"{MARKER} Classify the user's request (quoted in the next message, possibly cut) by the kind "
              f"of work needed to answer it. Do not answer the request. Reply with exactly one label "
              f"and nothing else.\nLabels:\n{lines}")
    return {"model": "auto", "messages": [{"role": "system", "content": system}, {"role": "user", "content": text}],
            "max_tokens": max_tokens, "temperature": 0, "stream": False}


def plan(routed: Routed, cfg: CascadeSettings, signals: Signals, *, now: float) -> Ask | str:
    """The call to make, or the ``skipped_*`` outcome saying why not. ``now``: ``perf_counter`` time."""
    policy = routed.loaded.policy
    if cfg.route not in policy.routes:
        return "skipped_unavailable"
    limits, chosen = routed.decision.limits, routed.decision.chosen
    assert chosen is not None  # wanted() checked
    spent_ms = (now - routed.arrived) * 1000
    if (limits.latency_budget_ms < cfg.min_latency_budget_ms
            or spent_ms + cfg.timeout_ms + chosen.latency_ms > limits.latency_budget_ms):
        return "skipped_latency"
    labels = tuple(routed.probabilities)
    body = cascade_body(labels, prompt_text(routed, cfg.max_prompt_chars), cfg.max_tokens)
    facts = extract_facts(body)
    cand = estimate_route(policy, cfg.route, facts, Label("simple"), signals, output_tokens=cfg.max_tokens)
    if signals.backend(cand.backend).circuit == "open":
        return "skipped_unavailable"
    if cand.cost_usd + chosen.cost_usd > limits.max_cost_usd:
        return "skipped_cost"
    top = max(routed.probabilities, key=routed.probabilities.__getitem__)
    return Ask(body, facts, cand, labels, top, routed.probabilities[top])


def parse_label(reply: str, labels: tuple[str, ...]) -> str | None:
    """The one label a short reply names, else None.

    Case, quotes, punctuation and ``long context`` vs ``long_context`` do not matter; the whole
    reply, then its first word, is matched exactly, then as a unique prefix of 4+ characters (a
    label cut short by ``max_tokens``).
    """
    words = _WORD.findall(reply.lower())
    if not words:
        return None
    guesses = ("_".join(words), words[0])
    for guess in guesses:
        if guess in labels:
            return guess
    for guess in guesses:
        matches = [label for label in labels if len(guess) >= 4 and label.startswith(guess)]
        if len(matches) == 1:
            return matches[0]
    return None


def reply_text(response: dict[str, Any]) -> str:
    choices = response.get("choices") or [{}]
    message = choices[0].get("message") or {}
    content = message.get("content")
    return content if isinstance(content, str) else ""


Relabel = Callable[[tuple[Label, dict[str, float], str]], "Routed"]


class Cascade:
    """The pipeline's labelling step after ``prepare``; one per pipeline."""

    def __init__(self, *, dispatcher: Dispatcher, signals: Signals, metrics: RouterMetrics, tracer: Tracer,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.dispatcher = dispatcher
        self.signals = signals
        self.metrics = metrics
        self.tracer = tracer
        self.clock = clock
        for outcome in OUTCOMES:  # the series exist (at 0) from the start, as dashboards expect
            metrics.cascade.labels(outcome)

    async def label(self, routed: Routed, relabel: Relabel) -> Routed:
        """``routed``, or the request decided again under the cascade's label."""
        cfg = routed.loaded.policy.classifier.cascade
        if not wanted(routed, cfg):
            self.metrics.label_source.labels(label_source(routed.rule)).inc()
            return routed
        assert cfg is not None
        with self.tracer.span("router.cascade", {"router.cascade.route": cfg.route}) as span:
            out, outcome = await self._ask(routed, cfg, relabel)
            span.set_attributes({"router.cascade.outcome": outcome, "router.label_source": label_source(out.rule),
                                 "router.task_type": out.label.task_type})
        self.metrics.cascade.labels(outcome).inc()
        self.metrics.label_source.labels(label_source(out.rule)).inc()
        return out

    def planned(self, routed: Routed) -> Candidate | None:
        """The label call ``label`` would make for this request now (route, estimated cost), if any:
        the tenant gate reserves its cost before any call is made (``TenantGate.admit``)."""
        cfg = routed.loaded.policy.classifier.cascade
        if not wanted(routed, cfg):
            return None
        assert cfg is not None
        ask = plan(routed, cfg, self.signals, now=self.clock())
        return None if isinstance(ask, str) else ask.candidate

    async def _ask(self, routed: Routed, cfg: CascadeSettings, relabel: Relabel) -> tuple[Routed, str]:
        ask = plan(routed, cfg, self.signals, now=self.clock())
        if isinstance(ask, str):
            return routed, ask
        admitted = routed.admitted  # a tenant's request: the call runs only within what was reserved
        if admitted is not None and not admitted.allows_cascade(ask.candidate.route, ask.candidate.cost_usd):
            return routed, "skipped_cost"
        route = ask.candidate.route
        timeout_s = cfg.timeout_ms / 1000
        money = routed.decision.limits.max_cost_usd - routed.chosen.cost_usd
        try:
            async with asyncio.timeout(timeout_s):
                answer = await self.dispatcher.complete(routed.loaded, [ask.candidate], ask.body, ask.facts, money,
                                                        deadline=self.clock() + timeout_s)
        except TimeoutError:
            # The upstream may bill a call we stopped waiting for: its estimate is taken off the ceiling.
            self._charge(routed, route, ask.candidate.cost_usd)
            return routed, "timeout"
        except Exception as exc:  # an upstream error, an open circuit: the model's label stands
            log.debug("cascade call failed: %s", type(exc).__name__)
            return routed, "error"
        cost = answer.cost_usd
        said = parse_label(reply_text(answer.response), ask.labels)
        if said is None:
            self._charge(routed, route, cost)
            return routed, "unparseable"
        rule = (f"{CASCADE_PREFIX} {answer.candidate.route} said {said}; the model said {ask.top} at "
                f"{ask.top_probability:.2f} < {cfg.below:.2f}")
        if said == routed.label.task_type:  # the decision stands; the label is now the cascade's
            routed.rule = rule
            self._charge(routed, route, cost)
            return routed, "confirmed"
        label = Label(said, float(routed.probabilities.get(said, 0.0)), routed.label.answer_length,
                      routed.label.subtasks)
        again = relabel((label, routed.probabilities, rule))
        chosen = again.decision.chosen
        money = routed.decision.limits.max_cost_usd
        if chosen is None or again.decision.best_effort or chosen.cost_usd + cost > money or (
                admitted is not None and not admitted.refit(again.decision, money)):
            self._charge(routed, route, cost)
            return routed, "over_limits"
        again.admitted = admitted  # the new decision is served under the same admission
        self._charge(again, route, cost)
        return again, "relabelled"

    def _charge(self, routed: Routed, route: str, cost: float) -> None:
        """The cascade's spend: off the ceiling the answer may use, onto the request, its tenant's
        budget (settled with the answer's cost) and the metric."""
        routed.cascade_cost_usd += cost
        limits = routed.decision.limits
        routed.decision.limits = Limits(max(0.0, limits.max_cost_usd - cost), limits.latency_budget_ms)
        if routed.admitted is not None:
            routed.admitted.charge_cascade(route, cost)
        self.metrics.cascade_cost.inc(cost)
