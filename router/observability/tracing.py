"""OpenTelemetry spans following the GenAI semantic conventions, off unless configured.

Tree: ``router.request`` → ``router.classify``, ``router.decide``, one ``chat <model>`` span per
upstream attempt (fallbacks are siblings), and for swarm ``router.swarm.plan`` /
``router.swarm.agent`` / ``router.swarm.aggregate``. No prompt or answer text unless
``ROUTER_LOG_PROMPTS`` opts in. Enabled by the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` variables, or by handing in a tracer provider (tests).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from router.dispatch.upstream import UpstreamCall, Usage
    from router.engine.decide import Candidate

_PROVIDER_NAMES = {"openai_compatible": "openai", "openai": "openai", "anthropic": "anthropic",
                   "litellm": "litellm"}


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
    """The root ``router.request`` span of one request; it outlives the handler for streams."""

    def __init__(self, span: Any = None) -> None:
        self.span = span
        self.context: Any = None
        if span is not None:
            from opentelemetry import trace

            self.context = trace.set_span_in_context(span)

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        if self.span is None:
            yield
            return
        from opentelemetry import context

        token = context.attach(self.context)
        try:
            yield
        finally:
            context.detach(token)

    def end(self, attrs: dict[str, Any] | None = None, *, error: str | None = None) -> None:
        if self.span is None or not self.span.is_recording():
            return
        if attrs:
            self.span.set_attributes({k: v for k, v in attrs.items() if v is not None})
        if error:
            from opentelemetry.trace import Status, StatusCode

            self.span.set_attribute("error.type", error)
            self.span.set_status(Status(StatusCode.ERROR, error))
        self.span.end()


NO_TRACE = RequestTrace(None)


class _AttemptSpan:
    def __init__(self, span: Any) -> None:
        self._span = span

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


def _usage_attrs(model: Any, usage: Usage, cost: float) -> dict[str, Any]:
    attrs: dict[str, Any] = {"gen_ai.usage.input_tokens": usage.input_tokens,
                             "gen_ai.usage.output_tokens": usage.output_tokens,
                             "router.cost_usd": round(cost, 8)}
    if isinstance(model, str):
        attrs["gen_ai.response.model"] = model
    return attrs


def _attempt_attrs(cand: Candidate, call: UpstreamCall) -> dict[str, Any]:
    return {"gen_ai.operation.name": "chat",
            "gen_ai.provider.name": _PROVIDER_NAMES.get(call.backend.provider, call.backend.provider),
            "gen_ai.request.model": call.backend.model,
            "server.address": call.backend.api_base.split("//")[-1].split("/")[0],
            "router.route": cand.route, "router.backend": cand.backend, "router.mode": cand.mode}


class Tracer:
    """Thin facade so the hot path pays nothing when tracing is off."""

    def __init__(self, provider: TracerProvider | None = None, *, record_content: bool = False) -> None:
        self.record_content = record_content
        self._provider = provider
        self._tracer: Any = provider.get_tracer("model-router") if provider is not None else None

    @classmethod
    def from_env(cls, *, service_name: str = "model-router", record_content: bool = False) -> Tracer:
        if not (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) \
                or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true" \
                or os.environ.get("OTEL_TRACES_EXPORTER", "otlp") == "none":
            return cls(None, record_content=record_content)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider, record_content=record_content)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def start_request(self) -> RequestTrace:
        if self._tracer is None:
            return NO_TRACE
        return RequestTrace(self._tracer.start_span("router.request", attributes={"gen_ai.operation.name": "chat"}))

    @contextlib.contextmanager
    def span(self, name: str, attrs: dict[str, Any] | None = None) -> Iterator[Any]:
        if self._tracer is None:
            yield _NULL_SPAN
            return
        with self._tracer.start_as_current_span(name, attributes=attrs or {}) as span:
            yield _AttemptSpan(span)

    @contextlib.contextmanager
    def upstream_span(self, cand: Candidate, call: UpstreamCall) -> Iterator[Any]:
        if self._tracer is None:
            yield _NULL_SPAN
            return
        with self._tracer.start_as_current_span(f"chat {call.backend.model}", attributes=_attempt_attrs(cand, call),
                                                record_exception=False, set_status_on_exception=False) as span:
            yield _AttemptSpan(span)

    def failed_attempt(self, cand: Candidate, call: UpstreamCall, kind: str, started_perf: float) -> None:
        """A stream attempt that failed before its first chunk: a closed span, after the fact."""
        if self._tracer is None:
            return
        start_ns = time.time_ns() - int((time.perf_counter() - started_perf) * 1e9)
        span = self._tracer.start_span(f"chat {call.backend.model}", attributes=_attempt_attrs(cand, call),
                                       start_time=start_ns)
        _AttemptSpan(span).failed(kind)
        span.end()

    def finished_stream(self, cand: Candidate, call_backend: Any, model: Any, usage: Usage, cost: float,
                        started_perf: float, error_kind: str | None, parent: RequestTrace = NO_TRACE) -> None:
        if self._tracer is None:
            return
        from router.dispatch.upstream import UpstreamCall

        call = UpstreamCall(cand.backend, call_backend, "", {})
        start_ns = time.time_ns() - int((time.perf_counter() - started_perf) * 1e9)
        span = self._tracer.start_span(f"chat {call_backend.model}", attributes=_attempt_attrs(cand, call),
                                       start_time=start_ns, context=parent.context)
        wrapped = _AttemptSpan(span)
        wrapped.succeeded(model, usage, cost)
        if error_kind:
            wrapped.failed(error_kind)
        span.end()

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()
