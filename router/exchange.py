"""The internal request and answer model: what every front door, the pipeline, swarm and records share.

A front door parses its protocol into an OpenAI-chat-shaped body; ``Pipeline.prepare`` turns that
into a ``Routed`` request (label and decision). Carried out, it becomes an ``Answer`` (one JSON
answer) or an ``AnswerStream`` (chat chunks, then how the stream ended). Doors render both back in
their own protocol. Nothing here knows about HTTP, a protocol's wire shape or the pipeline.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from router import taxonomy
from router.dispatch.anthropic import passthrough_adjusted
from router.dispatch.modes import adjusted_params
from router.dispatch.upstream import NativeRequest, Usage
from router.engine.decide import Candidate, Decision, Label
from router.engine.label_source import label_source
from router.engine.request_facts import RequestFacts
from router.errors import RouterError
from router.observability.tracing import NO_TRACE, RequestTrace
from router.policy.loader import LoadedPolicy
from router.protocol import RouterControls

if TYPE_CHECKING:
    from router.tenants.enforce import Admitted

CHAT_API = taxonomy.APIS[0]  # the ``api`` of a request that came through ``/v1/chat/completions``


@dataclass(slots=True)
class Routed:
    """A request after classification and decision; carried out by the pipeline."""

    request_id: str
    arrived: float
    body: dict[str, Any]
    facts: RequestFacts
    controls: RouterControls
    loaded: LoadedPolicy
    label: Label
    decision: Decision
    decision_ms: float
    probabilities: dict[str, float] = field(default_factory=dict)
    rule: str | None = None
    include_usage: bool = False
    trace: RequestTrace = NO_TRACE
    api: str = CHAT_API  # which front door it came through (metrics, access log)
    tenant: str | None = None  # who sent it (the tenancy hook's answer; None: single tenant)
    admitted: Admitted | None = None  # hook (issue 14): its rate/budget reservation, settled by Accounting
    # The client's request in a protocol some upstream speaks natively (the /v1/messages body, for
    # Claude): sent as it came to such a route instead of ``body`` (dispatch/anthropic.py).
    native: NativeRequest | None = None
    cascade_cost_usd: float = 0.0  # hook (issue 17): spent asking the cascade route for the label
    # ``_adjusted`` per (backend, mode): a stream's router object is built twice (head and end), and
    # each build rebuilt the whole upstream body to learn which client parameters it changed.
    _adjusted_memo: dict[tuple[str, str], list[str]] | None = field(default=None, init=False, repr=False)

    @property
    def chosen(self) -> Candidate:
        assert self.decision.chosen is not None
        return self.decision.chosen

    def candidate(self, route: str) -> Candidate:
        """The chain's candidate for ``route`` (the one that answered, after fallbacks)."""
        chosen = self.decision.chosen
        if chosen is not None and chosen.route == route:  # the usual answer, without building the chain
            return chosen
        return next((c for c in self.decision.chain if c.route == route), self.chosen)

    def router_object(self, *, route: str, mode: str, fallbacks: int, cost_usd: float | None,
                      swarm: dict[str, Any] | None = None,
                      known_adjusted: tuple[str, ...] | None = None) -> dict[str, Any]:
        answered = self.candidate(route)  # estimates of the route that answered, not of the first choice
        obj: dict[str, Any] = {
            "request_id": self.request_id, "task_type": self.label.task_type,
            "confidence": round(self.label.confidence, 4), "route": route, "mode": mode,
            "estimated_cost_usd": round(answered.cost_usd, 8),
            "cost_usd": None if cost_usd is None else round(cost_usd, 8),
            "estimated_latency_ms": round(answered.latency_ms, 1),
            "fallbacks": fallbacks, "decision_ms": round(self.decision_ms, 3),
            "max_cost_usd": self.decision.limits.max_cost_usd,
            "latency_budget_ms": self.decision.limits.latency_budget_ms,
        }
        obj["label_source"] = label_source(self.rule)  # hook (issue 17): model | rule | cascade | header
        if self.cascade_cost_usd:
            obj["cascade_cost_usd"] = round(self.cascade_cost_usd, 8)
        if self.decision.best_effort:
            obj["best_effort"] = True
        if route != taxonomy.SWARM_ROUTE and (adjusted := self._adjusted(answered, known_adjusted)):
            obj["adjusted_params"] = adjusted  # client params the route could not take as given
        if swarm is not None:
            obj["swarm"] = swarm
        return obj

    def _adjusted(self, answered: Candidate, known: tuple[str, ...] | None = None) -> list[str]:
        key = (answered.backend, answered.mode)
        memo = self._adjusted_memo
        if memo is None:
            memo = self._adjusted_memo = {}
        elif key in memo:
            return list(memo[key])
        backend = self.loaded.policy.backends[answered.backend]
        native = passthrough_adjusted(self.native, self.body, backend, answered.mode)  # sent as the client's
        adjusted = memo[key] = native if native is not None else (  # hook: known = the dispatch's own build's
            list(known) if known is not None else adjusted_params(self.body, backend, answered.mode))
        return list(adjusted)

    def headers(self, router_obj: Mapping[str, Any]) -> dict[str, str]:
        """The ``x-router-*`` decision headers, the same on every door."""
        out = {
            "x-router-request-id": self.request_id,
            "x-router-route": str(router_obj["route"]),
            "x-router-task-type": self.label.task_type,
            "x-router-confidence": f"{self.label.confidence:.4f}",
            "x-router-mode": str(router_obj["mode"]),
            "x-router-estimated-cost-usd": f"{router_obj['estimated_cost_usd']:.8f}",
            "x-router-estimated-latency-ms": f"{router_obj['estimated_latency_ms']:.1f}",
            "x-router-fallbacks": str(router_obj["fallbacks"]),
            "x-router-decision-ms": f"{self.decision_ms:.3f}",
        }
        if router_obj.get("cost_usd") is not None:
            out["x-router-cost-usd"] = f"{router_obj['cost_usd']:.8f}"
        return out


@dataclass(slots=True)
class Answer:
    """One complete answer: an OpenAI ``chat.completion`` (the internal shape) and its decision —
    or, when a route answered ``Routed.native`` natively, that upstream's own answer (an Anthropic
    ``Message``: no ``choices``) for the door to pass on."""

    routed: Routed
    response: dict[str, Any]
    router: dict[str, Any]
    headers: dict[str, str]
    usage: Usage


class StreamRenderer(Protocol):
    """One protocol's wire bytes for a stream, pushed: a call per chunk, one call at the end.

    Pushed rather than pulled (a generator over a generator) because it runs once per streamed
    chunk: one generator and a method call per chunk is the least the hot path can do.
    """

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        """The bytes for one chunk (``b""``: nothing to send yet)."""
        ...

    def end(self, stream: AnswerStream) -> bytes:
        """The closing bytes once the stream ended (``stream.router``/``usage`` or ``stream.error`` set)."""
        ...


# Starts a stream's frames: (the stream, how to render it) -> the wire bytes.
StreamSource = Callable[["AnswerStream", StreamRenderer], AsyncGenerator[bytes, None]]


class AnswerStream:
    """A streamed answer: OpenAI ``chat.completion.chunk`` dicts, rendered by a door as they come
    (or, when a route answered ``Routed.native`` natively, that upstream's own events — dicts
    without ``choices`` — passed to the renderer unstamped).

    ``frames(renderer)`` gives the wire bytes: the renderer sees only chunks with choices (usage
    is collected, not passed on), all with the same ``id``, ``model`` and ``created``; before its
    ``end`` is called, ``router`` and ``usage`` are set (the stream succeeded) or ``error`` is (the
    upstream failed after the stream had started). Closing the frames early (the client left)
    cancels the upstream work; ``end`` is then not called.
    """

    __slots__ = ("_source", "error", "headers", "routed", "router", "usage")

    def __init__(self, routed: Routed, headers: dict[str, str], source: StreamSource) -> None:
        self.routed = routed
        self.headers = headers
        self._source = source
        self.router: dict[str, Any] | None = None
        self.usage = Usage()
        self.error: RouterError | None = None

    def frames(self, renderer: StreamRenderer) -> AsyncGenerator[bytes, None]:
        return self._source(self, renderer)
