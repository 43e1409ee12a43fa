"""The decision record: one JSON line per request with everything ``decide()`` needs to be replayed.

``decision_record(routed, outcome)`` builds it from what the request pipeline already holds (the
``Routed`` request: facts, label with probabilities, limits, the signals the decision read, every
candidate with its estimates and rejection reasons, the chain, the propensity) plus the outcome at
the request's end edge. ``replay_inputs(record)`` turns a record back into ``decide()``'s arguments,
so ``decide(policy, *replay_inputs(record))`` repeats the logged decision exactly.

Fields are flat where the analytics read them (DuckDB scans columns, not nested maps). Never a
prompt unless ``log_prompts`` is on (a SHA-256 of the messages always); never keys or headers.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from router.engine.decide import Label, Limits
from router.engine.label_source import label_source
from router.engine.label_source import model_labelled as is_model_labelled
from router.engine.request_facts import RequestFacts
from router.engine.signals import BackendSignals, RouteSignals

if TYPE_CHECKING:
    from router.dispatch.upstream import Usage
    from router.exchange import Routed

RECORD_VERSION = 1
FEEDBACK_EVENT = "feedback"
DECISION_EVENT = "decision"


@dataclass(slots=True)  # not frozen: built on the request thread, where frozen __init__ costs µs
class Outcome:
    """How the request ended, as the end edge (metrics and access log) saw it."""

    status: str
    route: str
    mode: str
    usage: Usage
    cost_usd: float
    fallbacks: int
    duration_s: float
    ttft_s: float | None
    ended_at: float  # wall clock (time.time())


def prompt_hash(body: dict[str, Any]) -> str:
    """SHA-256 of the messages (the same conversation always hashes the same)."""
    raw = orjson.dumps(body.get("messages") or [], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()


def _request_shape(routed: Routed) -> tuple[str | None, str | None]:
    """(forced mode, direct route) as the serving layer resolved the body's ``model``."""
    model = str(routed.body.get("model") or "auto")
    if model == "auto":
        return routed.controls.mode, None
    if model.startswith("auto:"):
        return model[5:], None
    return None, routed.loaded.policy.resolve_model(model)


def decision_record(routed: Routed, outcome: Outcome, *, log_prompts: bool = False) -> dict[str, Any]:
    decision = routed.decision
    facts = routed.facts
    label = routed.label
    forced_mode, direct_route = _request_shape(routed)
    used = decision.signals_used
    probs = routed.probabilities
    # The learned model's own top label (before the confidence floor): what the request most likely
    # is, and what replay needs to re-apply another floor without parsing the probability map.
    source = label_source(routed.rule)
    # (a cascade label still has the model's probabilities: its top label is logged for calibration)
    model_labelled = bool(probs) and (source == "cascade" or is_model_labelled(routed.rule))
    top = max(probs, key=probs.__getitem__) if model_labelled else None
    chosen = decision.chosen
    answered = routed.candidate(outcome.route) if chosen is not None else None
    record: dict[str, Any] = {
        "event": DECISION_EVENT, "v": RECORD_VERSION, "ts": outcome.ended_at,
        "request_id": routed.request_id, "trace_id": routed.trace.trace_id,
        "policy_name": routed.loaded.policy.name, "policy_version": routed.loaded.policy.version,
        "policy_digest": routed.loaded.digest,
        "model": str(routed.body.get("model") or "auto"), "forced_mode": forced_mode, "direct_route": direct_route,
        "prompt_sha256": prompt_hash(routed.body),
        # request facts
        "text_chars": facts.text_chars, "text_bytes": facts.text_bytes, "images": facts.images,
        "videos": facts.videos, "has_tools": facts.has_tools, "max_output_tokens": facts.max_output_tokens,
        "stream": facts.stream, "messages": facts.messages, "input_tokens": facts.input_tokens,
        # label
        "task_type": label.task_type, "confidence": label.confidence, "answer_length": label.answer_length,
        "subtasks": label.subtasks, "rule": routed.rule, "label_source": source, "probabilities": probs,
        "top_task_type": top, "top_probability": probs[top] if top else None,
        # limits and the live view the decision read
        "max_cost_usd": decision.limits.max_cost_usd, "latency_budget_ms": decision.limits.latency_budget_ms,
        "signals": None if used is None else {
            "routes": {r: [s.ttft_ms, s.output_tokens_per_s] for r, s in used.routes.items()},
            "backends": {b: [s.circuit, s.inflight, s.queue_waiting, s.queue_wait_ms]
                         for b, s in used.backends.items()}},
        # the decision
        "candidates": [{"route": c.route, "quality": c.quality, "cost_usd": c.cost_usd, "latency_ms": c.latency_ms,
                        "output_tokens": c.output_tokens, "reasoning_tokens": c.reasoning_tokens,
                        "reasons": c.reasons} for c in decision.candidates],
        "chosen": chosen.route if chosen else None, "chain": [c.route for c in decision.chain],
        "best_effort": decision.best_effort,
        "explore_draw": decision.explore_draw, "propensity": decision.propensity, "explored": decision.explored,
        "est_cost_usd": answered.cost_usd if answered else None,
        "est_latency_ms": answered.latency_ms if answered else None,
        # the outcome
        "status": outcome.status, "route": outcome.route, "mode": outcome.mode,
        "tokens_in": outcome.usage.input_tokens, "tokens_out": outcome.usage.output_tokens,
        "tokens_reasoning": outcome.usage.reasoning_tokens, "cost_usd": outcome.cost_usd,
        "ttft_ms": None if outcome.ttft_s is None else outcome.ttft_s * 1000,
        "latency_ms": outcome.duration_s * 1000, "fallbacks": outcome.fallbacks,
        "cascade_cost_usd": routed.cascade_cost_usd,
    }
    if log_prompts:
        record["prompt_messages"] = routed.body.get("messages")
    return record


def feedback_record(*, request_id: str, score: float, thumbs: str | None, task_type: str | None,
                    comment: str | None, route: str, label: str) -> dict[str, Any]:
    return {"event": FEEDBACK_EVENT, "v": RECORD_VERSION, "ts": time.time(), "request_id": request_id,
            "score": score, "thumbs": thumbs, "corrected_task_type": task_type, "comment": comment,
            "route": route, "task_type": label}


class RecordedSignals:
    """``Signals`` served from a record: exactly the values the logged decision read.

    A route or backend the record does not mention (a candidate policy may list more) gets the
    policy's prior through ``fallback``.
    """

    def __init__(self, signals: dict[str, Any] | None, fallback: Any) -> None:
        signals = signals or {}
        self._routes = {r: RouteSignals(float(v[0]), float(v[1])) for r, v in (signals.get("routes") or {}).items()}
        self._backends = {b: BackendSignals(str(v[0]), int(v[1]), None if v[2] is None else float(v[2]), float(v[3]))
                          for b, v in (signals.get("backends") or {}).items()}
        self._fallback = fallback

    def route(self, route: str) -> RouteSignals:
        live = self._routes.get(route)
        return live if live is not None else self._fallback.route(route)

    def backend(self, backend: str) -> BackendSignals:
        load = self._backends.get(backend)
        return load if load is not None else self._fallback.backend(backend)


@dataclass(frozen=True, slots=True)
class ReplayInputs:
    facts: RequestFacts
    label: Label
    limits: Limits
    forced_mode: str | None
    direct_route: str | None
    explore_draw: float | None


def replay_inputs(record: dict[str, Any]) -> ReplayInputs:
    """``decide()``'s arguments (signals aside: see ``RecordedSignals``) from a decision record."""
    facts = RequestFacts(text_chars=int(record["text_chars"]), text_bytes=int(record["text_bytes"]),
                         images=int(record["images"]), videos=int(record["videos"]),
                         has_tools=bool(record["has_tools"]), max_output_tokens=record.get("max_output_tokens"),
                         stream=bool(record["stream"]), messages=int(record.get("messages") or 1))
    label = Label(str(record["task_type"]), float(record["confidence"]), str(record["answer_length"]),
                  int(record["subtasks"]))
    limits = Limits(float(record["max_cost_usd"]), float(record["latency_budget_ms"]))
    return ReplayInputs(facts, label, limits, record.get("forced_mode"), record.get("direct_route"),
                        record.get("explore_draw"))


def label_under(record: dict[str, Any], confidence_floor: float, fallback: str) -> Label:
    """The label the classifier would have given under another confidence floor.

    Only a label the learned model gave (no structural rule, no client header) depends on the floor:
    the top probability is compared with the floor as ``TaskClassifier.classify`` does. The logged
    answer length and subtask count are kept (they barely depend on the label).
    """
    logged = replay_inputs(record).label
    probs: dict[str, float] = record.get("probabilities") or {}
    rule = record.get("rule")
    if not probs or (rule is not None and not str(rule).startswith("floor:")):
        return logged
    top = max(probs, key=probs.__getitem__)
    if probs[top] < confidence_floor:
        return Label(fallback, float(probs.get(fallback, 0.0)), logged.answer_length, logged.subtasks)
    return Label(top, float(probs[top]), logged.answer_length, logged.subtasks)
