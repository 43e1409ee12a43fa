"""OpenTelemetry spans following the GenAI semantic conventions, off unless configured.

Tree: ``router.request`` → ``router.classify``, ``router.decide``, one ``chat <model>`` span per
upstream attempt (fallbacks are siblings), and for swarm ``router.swarm.plan`` /
``router.swarm.agent`` / ``router.swarm.aggregate``. No prompt or answer text unless
``ROUTER_LOG_PROMPTS`` opts in (then the messages sent upstream go into ``gen_ai.input.messages``).
Enabled by the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
variables (the OTLP/HTTP exporter reads the other ``OTEL_*`` settings itself), or by handing in a
tracer provider (tests).

When tracing is off every method returns at its first line, so the hot path pays one attribute
check per call.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from router.dispatch.upstream import UpstreamCall, Usage
    from router.engine.decide import Candidate
    from router.policy.model import Backend

log = logging.getLogger("router.tracing")

# gen_ai.provider.name well-known values; an OpenAI-compatible self-hosted engine reports as "openai"
# (it speaks OpenAI's protocol), router.backend says which backend it really was.
_PROVIDER_NAMES = {"openai_compatible": "openai", "openai": "openai", "anthropic": "anthropic",
                   "litellm": "litellm"}
# Request parameters worth seeing on an attempt span (numbers only: never text).
_REQUEST_PARAMS = (("max_tokens", "gen_ai.request.max_tokens"),
                   ("max_completion_tokens", "gen_ai.request.max_tokens"),
                   ("temperature", "gen_ai.request.temperature"), ("top_p", "gen_ai.request.top_p"))
_MAX_CONTENT_CHARS = 16_384


class _NullSpan:
    def set_attribute(self, key: str, value: Any) -> None:
        return None

    def set_attributes(self, attrs: dict[str, Any]) -> None:
        return None

    def failed(self, kind: str) -> None:
        return None

    def succeeded(self, model: Any, usage: Usage, cost: float) -> None:
        return None


_NULL_SPAN = _NullSpan()


class RequestTrace:
    """The root ``router.request`` span of one request; it outlives the handler for streams.

    The attempt that answers reports its provider and model here (``answered``) so the root span
    carries the GenAI view of the whole request, whichever fallback produced it.
    """

    def __init__(self, span: Any = None) -> None:
        self.span = span
        self.context: Any = None
        self._answered: dict[str, Any] = {}
        if span is not None:
            from opentelemetry import trace

            self.context = trace.set_span_in_context(span)

    @property
    def trace_id(self) -> str | None:
        """The W3C trace id (32 hex digits), for correlating the access log line with the trace."""
        if self.span is None:
            return None
        ctx = self.span.get_span_context()
        return f"{ctx.trace_id:032x}" if ctx.trace_id else None

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        if self.span is None:
            yield
            return
        from opentelemetry import context

        token = context.attach(self.context)
        current = _CURRENT_REQUEST.set(self)
        try:
            yield
        finally:
            _CURRENT_REQUEST.reset(current)
            context.detach(token)

    def answered(self, attrs: dict[str, Any]) -> None:
        self._answered.update(attrs)

    def end(self, attrs: dict[str, Any] | None = None, *, error: str | None = None) -> None:
        if self.span is None or not self.span.is_recording():
            return
        if self._answered:
            self.span.set_attributes(self._answered)
        if attrs:
            self.span.set_attributes({k: v for k, v in attrs.items() if v is not None})
        if error:
            from opentelemetry.trace import Status, StatusCode

            self.span.set_attribute("error.type", error)
            self.span.set_status(Status(StatusCode.ERROR, error))
        self.span.end()


NO_TRACE = RequestTrace(None)
# The request being served in this task (and the tasks it spawns): attempts report to its root span.
_CURRENT_REQUEST: contextvars.ContextVar[RequestTrace] = contextvars.ContextVar("router_request_trace",
                                                                               default=NO_TRACE)


class _AttemptSpan:
    def __init__(self, span: Any, request: RequestTrace = NO_TRACE) -> None:
        self._span = span
        self._request = request

    def set_attribute(self, key: str, value: Any) -> None:
        self._span.set_attribute(key, value)

    def set_attributes(self, attrs: dict[str, Any]) -> None:
        self._span.set_attributes(attrs)

    def failed(self, kind: str) -> None:
        from opentelemetry.trace import Status, StatusCode

        self._span.set_attribute("error.type", kind)
        self._span.set_status(Status(StatusCode.ERROR, kind))

    def succeeded(self, model: Any, usage: Usage, cost: float) -> None:
        self._span.set_attributes(_usage_attrs(model, usage, cost))
        if self._request.span is not None:
            attrs = self._span.attributes or {}
            self._request.answered({k: attrs[k] for k in ("gen_ai.provider.name", "gen_ai.response.model")
                                    if k in attrs})


def _usage_attrs(model: Any, usage: Usage, cost: float) -> dict[str, Any]:
    attrs: dict[str, Any] = {"gen_ai.usage.input_tokens": usage.input_tokens,
                             "gen_ai.usage.output_tokens": usage.output_tokens,
                             "router.cost_usd": round(cost, 8)}
    if usage.reasoning_tokens:
        attrs["router.usage.reasoning_tokens"] = usage.reasoning_tokens
    if isinstance(model, str):
        attrs["gen_ai.response.model"] = model
    return attrs


def _server(api_base: str) -> dict[str, Any]:
    """server.address/port of a backend URL — never its userinfo, path or query (they may hold keys)."""
    try:
        parts = urlsplit(api_base)
        host, port = parts.hostname, parts.port
    except ValueError:
        return {}
    attrs: dict[str, Any] = {"server.address": host} if host else {}
    if port:
        attrs["server.port"] = port
    return attrs


def _attempt_attrs(cand: Candidate, backend: Backend, body: dict[str, Any] | None = None) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": _PROVIDER_NAMES.get(backend.provider, backend.provider),
        "gen_ai.request.model": backend.model,
        "router.route": cand.route, "router.backend": cand.backend, "router.mode": cand.mode,
        **_server(backend.api_base or ""),
    }
    if body:
        for field, key in _REQUEST_PARAMS:
            value = body.get(field)
            if isinstance(value, int | float) and not isinstance(value, bool):
                attrs[key] = value
    return attrs


def _content(messages: Any) -> str:
    import orjson

    text = orjson.dumps(messages).decode()
    return text if len(text) <= _MAX_CONTENT_CHARS else text[:_MAX_CONTENT_CHARS] + "…"


class Tracer:
    """Thin facade so the hot path pays nothing when tracing is off."""

    def __init__(self, provider: TracerProvider | None = None, *, record_content: bool = False) -> None:
        self.record_content = record_content
        self._provider = provider
        self._tracer: Any = provider.get_tracer("model-router") if provider is not None else None

    @classmethod
    def from_env(cls, *, service_name: str = "model-router", record_content: bool = False,
                 environ: dict[str, str] | None = None) -> Tracer:
        """OTLP/HTTP export when ``OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`` is set; off otherwise.

        ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` turn it off too. Sampler
        (``OTEL_TRACES_SAMPLER``), batching (``OTEL_BSP_*``), headers, compression and timeout
        (``OTEL_EXPORTER_OTLP_*``) are read by the SDK and the exporter themselves.
        """
        env = os.environ if environ is None else environ
        if not (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) \
                or env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true" \
                or env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
            return cls(None, record_content=record_content)
        protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        if protocol and protocol.strip() != "http/protobuf":
            log.warning("OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported; exporting with http/protobuf",
                        protocol)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # Resource.create reads OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES; ours is only the default.
        resource = Resource.create()
        if resource.attributes.get(SERVICE_NAME, "unknown_service") == "unknown_service":
            resource = resource.merge(Resource.create({SERVICE_NAME: service_name}))
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider, record_content=record_content)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def start_request(self, model: str | None = None) -> RequestTrace:
        """The root span; ``model`` is what the client asked for (``auto``, ``auto:swarm``, a route)."""
        if self._tracer is None:
            return NO_TRACE
        attrs: dict[str, Any] = {"gen_ai.operation.name": "chat"}
        if isinstance(model, str):
            attrs["gen_ai.request.model"] = model[:128]
        return RequestTrace(self._tracer.start_span("router.request", attributes=attrs))

    @contextlib.contextmanager
    def span(self, name: str, attrs: dict[str, Any] | None = None) -> Iterator[Any]:
        """A child of the current span (classify, decide, swarm plan/agent/aggregate, ...).

        Exceptions mark the span failed with their type only: their messages may quote the request.
        """
        if self._tracer is None:
            yield _NULL_SPAN
            return
        with self._tracer.start_as_current_span(name, attributes=attrs or {}, record_exception=False,
                                                set_status_on_exception=False) as span:
            wrapped = _AttemptSpan(span, _CURRENT_REQUEST.get())
            try:
                yield wrapped
            except BaseException as exc:
                wrapped.failed(getattr(exc, "kind", None) or type(exc).__name__)
                raise

    @contextlib.contextmanager
    def upstream_span(self, cand: Candidate, call: UpstreamCall) -> Iterator[Any]:
        if self._tracer is None:
            yield _NULL_SPAN
            return
        attrs = _attempt_attrs(cand, call.backend, call.body)
        if self.record_content and "messages" in call.body:
            attrs["gen_ai.input.messages"] = _content(call.body["messages"])
        with self._tracer.start_as_current_span(f"chat {call.backend.model}", attributes=attrs,
                                                record_exception=False, set_status_on_exception=False) as span:
            wrapped = _AttemptSpan(span, _CURRENT_REQUEST.get())
            try:
                yield wrapped
            except BaseException as exc:
                if span.status.is_unset:  # e.g. cancelled by a client disconnect
                    wrapped.failed(getattr(exc, "kind", None) or type(exc).__name__)
                raise

    def failed_attempt(self, cand: Candidate, call: UpstreamCall, kind: str, started_perf: float) -> None:
        """A stream attempt that failed before its first chunk: a closed span, after the fact."""
        if self._tracer is None:
            return
        span = self._tracer.start_span(f"chat {call.backend.model}",
                                       attributes=_attempt_attrs(cand, call.backend, call.body),
                                       start_time=_wall_ns(started_perf))
        _AttemptSpan(span).failed(kind)
        span.end()

    def finished_stream(self, cand: Candidate, call_backend: Backend, model: Any, usage: Usage, cost: float,
                        started_perf: float, error_kind: str | None, parent: RequestTrace = NO_TRACE) -> None:
        """The attempt that streamed the answer, recorded when the stream ends (as a child of ``parent``)."""
        if self._tracer is None:
            return
        span = self._tracer.start_span(f"chat {call_backend.model}", attributes=_attempt_attrs(cand, call_backend),
                                       start_time=_wall_ns(started_perf), context=parent.context)
        wrapped = _AttemptSpan(span, parent)
        wrapped.succeeded(model, usage, cost)
        if error_kind:
            wrapped.failed(error_kind)
        span.end()

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()


def _wall_ns(started_perf: float) -> int:
    """A ``time.perf_counter()`` reading in the past, as wall-clock nanoseconds (span start times)."""
    return time.time_ns() - int((time.perf_counter() - started_perf) * 1e9)
