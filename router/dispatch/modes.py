"""A route's request, built from the client's through the dialect table (``dialects.py``).

Modes (Kimi K2.5's ways of working; vendor routes serve them through their own parameters):
- instant: thinking off — ``chat_template_kwargs: {"thinking": false}`` on vLLM/SGLang/NIM,
  ``thinking: {"type": "disabled"}`` on Moonshot's API, the lowest ``reasoning_effort`` on GPT-5,
  no ``thinking`` on Claude;
- thinking: the model reasons (``reasoning_effort: medium`` on GPT-5.x, Claude's ``thinking`` with a
  ``budget_tokens`` drawn from the time left of the latency budget);
- agent: thinking, with the client's tools.
A vendor route's ``default`` mode means the backend's own default, except that a backend the policy
marks ``thinks_by_default`` is asked to reason (GPT-5.2's API default effort is ``none``).

Client parameters the route cannot take are dropped, clamped or mapped, never sent to be refused:
``build_request`` returns the body and the names of the client parameters it adjusted (for the
``router`` object's ``adjusted_params``); each adjustment is logged once per (field, route) at debug.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from router.dispatch.dialects import (
    ANTHROPIC_MIN_THINKING_BUDGET,
    SAMPLING_PARAMS,
    Dialect,
    dialect_for,
)
from router.policy.model import Backend

log = logging.getLogger("router.dispatch")

_THINKING_MODES = frozenset({"thinking", "agent"})
_ROUTER_ONLY = ("router",)  # body fields that belong to the router, never to the upstream
# Dropping a parameter at the value every upstream assumes anyway changes nothing for the client.
_NEUTRAL = {"n": 1}
# When thinking is on, the share of the remaining time Claude may spend on it.
_THINKING_SHARE = 0.5
# A stand-in reasoning text for replayed tool-call turns that lost theirs (Moonshot needs the field).
_MISSING_REASONING = "."
_logged: set[tuple[str, str, str]] = set()


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    body: dict[str, Any]
    adjusted: tuple[str, ...]  # client parameters not forwarded as given (sorted)


def wanted_mode(body: dict[str, Any], route_mode: str) -> str:
    """The mode this request asks of the route: the route's own, or for a vendor ``default`` route
    the mode the client forced (``auto:<mode>`` or ``router.mode``), if any."""
    if route_mode != "default":
        return route_mode
    controls = body.get("router")
    if isinstance(controls, dict) and isinstance(controls.get("mode"), str):
        return str(controls["mode"])
    model = body.get("model")
    if isinstance(model, str) and model.startswith("auto:"):
        return model[5:]
    return route_mode


def remember_mode(body: dict[str, Any], forced_mode: str | None) -> None:
    """Keep a mode forced by a header in the body's ``router`` object, where the request builder
    reads it (the ``router`` object never reaches an upstream)."""
    if forced_mode is None or forced_mode == "swarm":
        return
    controls = body.get("router")
    if isinstance(controls, dict) and controls.get("mode") == forced_mode:
        return
    body["router"] = {**(controls if isinstance(controls, dict) else {}), "mode": forced_mode}


class _Builder:
    """One request's adaptation: the outgoing body and the notes on what changed."""

    __slots__ = ("adjusted", "backend", "dialect", "out")

    def __init__(self, body: dict[str, Any], backend: Backend, dialect: Dialect) -> None:
        self.out = {k: v for k, v in body.items() if k not in _ROUTER_ONLY}
        self.backend = backend
        self.dialect = dialect
        self.adjusted: set[str] = set()

    def adjust(self, name: str, *, drop: bool = False, value: Any = None) -> None:
        if drop:
            self.out.pop(name, None)
        else:
            self.out[name] = value
        self.adjusted.add(name)
        key = (name, self.dialect.name, self.backend.model)
        if key not in _logged:
            _logged.add(key)
            log.debug("%s: client parameter %r adjusted for %s (%s)", self.backend.model, name,
                      self.dialect.name, "dropped" if drop else "changed")

    def drop_quietly_or_adjust(self, name: str) -> None:
        if name not in self.out:
            return
        if _NEUTRAL.get(name, object()) == self.out[name]:
            self.out.pop(name)
        else:
            self.adjust(name, drop=True)


def build_request(body: dict[str, Any], backend: Backend, mode: str, *, max_output_tokens: int | None,
                  deadline: float | None = None) -> UpstreamRequest:
    """The body for ``backend`` in route mode ``mode``; ``max_output_tokens`` caps the output (money),
    ``deadline`` (``time.perf_counter()``) bounds Claude's thinking budget."""
    dialect = dialect_for(backend)
    b = _Builder(body, backend, dialect)
    out = b.out
    out["model"] = dialect.model_ids.get(backend.model, backend.model)
    mode = wanted_mode(body, mode)
    thinks = mode in _THINKING_MODES or (mode == "default" and backend.thinks_by_default)

    for name in dialect.never:
        if name in out:
            b.adjust(name, drop=True)
    effort = _reasoning(b, mode, thinks)
    _sampling(b, mode, effort)
    _output_limit(b, max_output_tokens)
    if dialect.thinking == "anthropic":
        _anthropic_thinking(b, thinks, deadline)
    if dialect.thinking == "moonshot" and thinks:
        out["messages"] = _with_reasoning_on_tool_turns(out["messages"])
    if out.get("stream") and dialect.thinking != "anthropic":
        # Usage is needed for cost accounting even when the client did not ask for it.
        options = dict(out.get("stream_options") or {})
        options["include_usage"] = True
        out["stream_options"] = options
    return UpstreamRequest(out, tuple(sorted(b.adjusted)))


def upstream_body(body: dict[str, Any], backend: Backend, mode: str, *, max_output_tokens: int | None,
                  deadline: float | None = None) -> dict[str, Any]:
    """``build_request``'s body alone."""
    return build_request(body, backend, mode, max_output_tokens=max_output_tokens, deadline=deadline).body


def adjusted_params(body: dict[str, Any], backend: Backend, mode: str) -> list[str]:
    """The client parameters the route that answered did not take as given (for the ``router``
    object). The cost cap's lowering of ``max_tokens`` is reported by ``cost_usd``, not here."""
    return list(build_request(body, backend, mode, max_output_tokens=None).adjusted)


def _reasoning(b: _Builder, mode: str, thinks: bool) -> str | None:
    """Set the mode's thinking parameters; returns the reasoning effort sent (OpenAI), if any."""
    out, dialect = b.out, b.dialect
    style = dialect.thinking
    if style == "chat_template_kwargs" and mode in ("instant", *_THINKING_MODES):
        kwargs = dict(out.get("chat_template_kwargs") or {})
        kwargs["thinking"] = mode != "instant"
        out["chat_template_kwargs"] = kwargs
    elif style == "moonshot" and mode in ("instant", *_THINKING_MODES):
        out["thinking"] = {"type": "enabled" if mode != "instant" else "disabled"}
    if style != "reasoning_effort":
        if "reasoning_effort" in out and style != "anthropic":  # Claude maps it (see _anthropic_thinking)
            b.adjust("reasoning_effort", drop=True)
        return None
    asked = out.get("reasoning_effort")
    effort: str | None
    if mode == "instant":
        effort = dialect.mode_efforts["instant"]  # a forced instant mode decides
    elif isinstance(asked, str):
        effort = asked
    else:
        effort = dialect.mode_efforts["thinking"] if thinks else None
    if effort is not None and effort not in dialect.efforts:
        effort = _nearest_effort(effort, dialect.efforts)
    if effort is None:
        return None
    if asked is not None and asked != effort:
        b.adjust("reasoning_effort", value=effort)
    else:
        out["reasoning_effort"] = effort
    return effort


_EFFORT_ORDER = ("none", "minimal", "low", "medium", "high", "xhigh")


def _nearest_effort(effort: str, accepted: frozenset[str]) -> str:
    rank = _EFFORT_ORDER.index(effort) if effort in _EFFORT_ORDER else _EFFORT_ORDER.index("medium")
    return min(accepted, key=lambda e: (abs(_EFFORT_ORDER.index(e) - rank), _EFFORT_ORDER.index(e)))


def _sampling(b: _Builder, mode: str, effort: str | None) -> None:
    out, dialect = b.out, b.dialect
    allowed = dialect.sampling
    if dialect.sampling_only_at_effort is not None and effort not in (None, dialect.sampling_only_at_effort):
        allowed = {k: v for k, v in allowed.items() if k in ("n", "seed")}
    for name in SAMPLING_PARAMS:
        if name not in out:
            continue
        if name in dialect.fixed or name not in allowed:
            b.drop_quietly_or_adjust(name)
            continue
        value = out[name]
        low, high = allowed[name]
        if isinstance(value, int | float) and not isinstance(value, bool) and not low <= value <= high:
            b.adjust(name, value=min(max(value, low), high))
    if dialect.exclusive_sampling:
        given = [name for name in dialect.exclusive_sampling if name in out]
        for name in given[1:]:  # the first one listed (temperature) wins
            b.adjust(name, drop=True)
    for name, value in dialect.recommended.get(mode, {}).items():
        if name not in dialect.fixed:
            out.setdefault(name, value)


def _output_limit(b: _Builder, cap: int | None) -> None:
    """One output-limit field under the name the upstream takes, lowered to ``cap``."""
    out = b.out
    current = out.pop("max_completion_tokens", None)
    legacy = out.pop("max_tokens", None)
    current = current if current is not None else legacy
    limit = current
    if cap is not None:
        limit = min(current, cap) if isinstance(current, int) else cap
    if limit is None and b.dialect.thinking == "anthropic":
        limit = b.backend.max_output_tokens  # the Messages API requires max_tokens
    if limit is not None:
        out[b.dialect.output_limit] = limit


def _anthropic_thinking(b: _Builder, thinks: bool, deadline: float | None) -> None:
    """Claude's extended thinking, with ``budget_tokens`` from the time left before the deadline."""
    out = b.out
    asked = out.pop("reasoning_effort", None)
    if isinstance(asked, str):
        wants = asked not in ("none", "minimal")
        if wants != thinks:
            b.adjusted.add("reasoning_effort")
        thinks = thinks or wants
    choice = out.get("tool_choice")
    forced_tool = choice == "required" or isinstance(choice, dict)
    limit = int(out["max_tokens"])
    if not thinks or forced_tool or limit <= ANTHROPIC_MIN_THINKING_BUDGET:
        return
    if deadline is not None:
        seconds = max(0.0, deadline - time.perf_counter())
        budget = int(seconds * b.backend.latency.output_tokens_per_s * _THINKING_SHARE)
    else:
        budget = limit // 2
    budget = max(ANTHROPIC_MIN_THINKING_BUDGET, min(budget, limit - 1))
    out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    for name in ("temperature", "top_p", "top_k"):  # thinking takes no sampling changes
        if name in out:
            b.adjust(name, drop=True)


def _with_reasoning_on_tool_turns(messages: list[Any]) -> list[Any]:
    """Moonshot refuses, in thinking mode, an assistant tool-call turn without ``reasoning_content``
    (clients that rebuild the turn from ``content`` + ``tool_calls`` lose it): give it a stand-in."""
    fixed: list[Any] | None = None
    for i, message in enumerate(messages):
        if (isinstance(message, dict) and message.get("role") == "assistant" and message.get("tool_calls")
                and not message.get("reasoning_content")):
            if fixed is None:
                fixed = list(messages)
            fixed[i] = {**message, "reasoning_content": _MISSING_REASONING}
    return fixed if fixed is not None else messages
