"""OpenTelemetry spans following the GenAI semantic conventions, off unless configured.

Tree: ``router.request`` → ``router.classify``, ``router.decide``, one ``chat <model>`` span per
upstream attempt (fallbacks are siblings), and for swarm ``router.swarm.plan`` /
``router.swarm.agent`` / ``router.swarm.aggregate`` (attempts made by an agent nest under it).
No prompt or answer text unless ``ROUTER_LOG_PROMPTS`` opts in (then the messages sent upstream go
into ``gen_ai.input.messages``). Enabled by the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` variables (the SDK and the OTLP/HTTP exporter read the other
``OTEL_*`` settings themselves), or by handing in a tracer provider (tests).

Why spans are recorded here and not with the SDK's ``Tracer``: creating an SDK span costs ~15-25 µs
of CPU (ids, sampler, attribute validation, locks, processor callbacks), and a request makes at
least four — more than the whole per-request budget for metrics and tracing. So the hot path only
notes what happened (name, ids, times, an attribute dict: ~2 µs a span) and, when the root span
ends, hands the request's spans to one background thread that turns them into SDK ``ReadableSpan``
objects and gives them to the provider's span processors (batching, OTLP export). Ids come from the
provider's id generator and the root span is offered to the provider's sampler, so
``OTEL_TRACES_SAMPLER`` works as usual. When tracing is off every method returns at its first line.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import queue
import threading
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
_INTERNAL, _SERVER, _CLIENT = 0, 1, 2  # opentelemetry.trace.SpanKind values


class _Recorded:
    """One span as the hot path notes it; turned into an SDK ``ReadableSpan`` off the hot path."""

    __slots__ = ("attrs", "end_ns", "error", "kind", "name", "parent_id", "span_id", "start_ns")

    def __init__(self, name: str, span_id: int, parent_id: int, attrs: dict[str, Any], kind: int,
                 start_ns: int) -> None:
        self.name = name
        self.span_id = span_id
        self.parent_id = parent_id
        self.attrs = attrs
        self.kind = kind
        self.start_ns = start_ns
        self.end_ns = 0
        self.error: str | None = None


class _Span:
    """What callers get from ``span()`` / ``upstream_span()``: attributes and the outcome."""

    __slots__ = ("_rec", "_request")
    recording = True

    def __init__(self, rec: _Recorded, request: RequestTrace) -> None:
        self._rec = rec
        self._request = request

    def set_attribute(self, key: str, value: Any) -> None:
        self._rec.attrs[key] = value

    def set_attributes(self, attrs: dict[str, Any]) -> None:
        self._rec.attrs.update(attrs)

    def failed(self, kind: str) -> None:
        self._rec.error = kind
        self._rec.attrs["error.type"] = kind

    def succeeded(self, model: Any, usage: Usage, cost: float) -> None:
        attrs = self._rec.attrs
        attrs.update(_usage_attrs(model, usage, cost))
        # The root span repeats who answered, whichever fallback (or swarm role) it was.
        self._request.answered["gen_ai.provider.name"] = attrs.get("gen_ai.provider.name")
        if "gen_ai.response.model" in attrs:
            self._request.answered["gen_ai.response.model"] = attrs["gen_ai.response.model"]


class _NullSpan:
    __slots__ = ()
    recording = False  # callers skip building attributes nobody records

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
    """The root ``router.request`` span of one request and the spans under it.

    It outlives the handler for streams; ``end()`` (once) hands the whole tree to the exporter.
    """

    __slots__ = ("_exporter", "answered", "root", "spans", "trace_id_int")

    def __init__(self, exporter: _Exporter | None = None, trace_id: int = 0, root: _Recorded | None = None) -> None:
        self._exporter = exporter
        self.trace_id_int = trace_id
        self.root = root
        self.spans: list[_Recorded] = [root] if root is not None else []
        self.answered: dict[str, Any] = {}

    @property
    def recording(self) -> bool:
        return self.root is not None and self.root.end_ns == 0

    @property
    def trace_id(self) -> str | None:
        """The W3C trace id (32 hex digits), for correlating the access log line with the trace."""
        return f"{self.trace_id_int:032x}" if self.root is not None else None

    def activate(self) -> contextlib.AbstractContextManager[None]:
        """Make this the current request (and its root the current parent) for the code inside.
        Not tracing: one shared no-op (no generator per request on the hot path)."""
        return _NOT_ACTIVE if self.root is None else self._activated()

    @contextlib.contextmanager
    def _activated(self) -> Iterator[None]:
        assert self.root is not None
        token = _CURRENT.set((self, self.root.span_id))
        try:
            yield
        finally:
            _CURRENT.reset(token)

    def _child(self, name: str, parent_id: int, attrs: dict[str, Any], kind: int,
               start_ns: int | None = None) -> _Recorded:
        assert self._exporter is not None
        rec = _Recorded(name, self._exporter.new_span_id(), parent_id, attrs, kind,
                        time.time_ns() if start_ns is None else start_ns)
        self.spans.append(rec)
        return rec

    def end(self, attrs: dict[str, Any] | None = None, *, error: str | None = None) -> None:
        root = self.root
        if root is None or root.end_ns:
            return
        root.attrs.update(self.answered)
        if attrs:
            root.attrs.update(attrs)
        if error:
            root.error = error
            root.attrs["error.type"] = error
        root.end_ns = time.time_ns()
        assert self._exporter is not None
        self._exporter.submit(self)


NO_TRACE = RequestTrace()
_NOT_ACTIVE: contextlib.nullcontext[None] = contextlib.nullcontext()  # reusable: it holds no state
# (request being served, current parent span id) in this task and the tasks it spawns.
_CURRENT: contextvars.ContextVar[tuple[RequestTrace, int] | None] = contextvars.ContextVar(
    "router_current_span", default=None)


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


def _wall_ns(started_perf: float) -> int:
    """A ``time.perf_counter()`` reading in the past, as wall-clock nanoseconds (span start times)."""
    return time.time_ns() - int((time.perf_counter() - started_perf) * 1e9)


class _Scope:
    """``with tracer.span(...) as span``: ends the span on exit, failed with the exception's type."""

    __slots__ = ("_nest", "_rec", "_request", "_token")

    def __init__(self, request: RequestTrace, rec: _Recorded, nest: bool) -> None:
        self._request = request
        self._rec = rec
        self._nest = nest
        self._token: contextvars.Token[tuple[RequestTrace, int] | None] | None = None

    def __enter__(self) -> _Span:
        if self._nest:  # spans opened inside become children of this one
            self._token = _CURRENT.set((self._request, self._rec.span_id))
        return _Span(self._rec, self._request)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        rec = self._rec
        if self._token is not None:
            _CURRENT.reset(self._token)
        if exc is not None and rec.error is None:  # e.g. cancelled by a client disconnect
            rec.error = getattr(exc, "kind", None) or type(exc).__name__
            rec.attrs["error.type"] = rec.error
        rec.end_ns = time.time_ns()


class _NullScope:
    __slots__ = ()

    def __enter__(self) -> _NullSpan:
        return _NULL_SPAN

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        return None


_NULL_SCOPE = _NullScope()


class _Exporter:
    """Turns finished requests' spans into SDK spans for the provider's processors, on one thread."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import SpanKind, Status, StatusCode, TraceFlags

        self._provider = provider
        # The SDK keeps its processors here; add_span_processor() appends to it. Handing finished
        # ReadableSpans to on_end() is exactly what an SDK span does when it ends.
        self._processor = provider._active_span_processor
        self._ids = provider.id_generator
        self._sampler = provider.sampler
        self._scope = InstrumentationScope("model-router")
        self._resource = provider.resource
        self._flags = TraceFlags(TraceFlags.SAMPLED)
        self._kinds = {k.value: k for k in SpanKind}
        self._unset = Status(StatusCode.UNSET)
        self._queue: queue.SimpleQueue[RequestTrace | threading.Event | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="otel-spans", daemon=True)
        self._thread.start()

    def new_span_id(self) -> int:
        span_id: int = self._ids.generate_span_id()
        return span_id

    def start(self, model: str | None) -> RequestTrace:
        trace_id: int = self._ids.generate_trace_id()
        attrs: dict[str, Any] = {"gen_ai.operation.name": "chat"}
        if isinstance(model, str):
            attrs["gen_ai.request.model"] = model[:128]
        sampled = self._sampler.should_sample(None, trace_id, "router.request", None, attrs)
        if not sampled.decision.is_sampled():  # type: ignore[no-untyped-call]
            return NO_TRACE
        root = _Recorded("router.request", self.new_span_id(), 0, attrs, _SERVER, time.time_ns())
        return RequestTrace(self, trace_id, root)

    def submit(self, request: RequestTrace) -> None:
        self._queue.put(request)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                for span in self._readable(item):
                    self._processor.on_end(span)
            except Exception:  # a broken exporter must not stop tracing for good
                log.exception("could not hand spans to the OpenTelemetry processors")

    def _readable(self, request: RequestTrace) -> list[Any]:
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext, Status, StatusCode

        trace_id, flags = request.trace_id_int, self._flags
        contexts = {rec.span_id: SpanContext(trace_id, rec.span_id, is_remote=False, trace_flags=flags)
                    for rec in request.spans}
        root_end = request.root.end_ns if request.root is not None else time.time_ns()
        return [ReadableSpan(
            name=rec.name, context=contexts[rec.span_id],
            parent=contexts.get(rec.parent_id) if rec.parent_id else None, resource=self._resource,
            attributes={k: v for k, v in rec.attrs.items() if v is not None}, kind=self._kinds[rec.kind],
            status=Status(StatusCode.ERROR, rec.error) if rec.error else self._unset,
            start_time=rec.start_ns, end_time=rec.end_ns or root_end,  # a child still open at the end
            instrumentation_scope=self._scope)
            for rec in request.spans[1:] + request.spans[:1]]  # the root last, as spans end in the SDK

    def flush(self, timeout: float = 10) -> bool:
        if not self._thread.is_alive():  # closed: nothing can be pending
            return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=10)


class Tracer:
    """Thin facade so the hot path pays (almost) nothing when tracing is off, and little when on."""

    def __init__(self, provider: TracerProvider | None = None, *, record_content: bool = False) -> None:
        self.record_content = record_content
        self._provider = provider
        self._exporter = _Exporter(provider) if provider is not None else None

    @classmethod
    def from_env(cls, *, service_name: str = "model-router", record_content: bool = False) -> Tracer:
        """OTLP/HTTP export when ``OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`` is set; off otherwise.

        ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` turn it off too. Sampler
        (``OTEL_TRACES_SAMPLER``), batching (``OTEL_BSP_*``), headers, compression and timeout
        (``OTEL_EXPORTER_OTLP_*``) are read by the SDK and the exporter themselves.
        """
        env = os.environ  # the SDK and the exporter read it too: one source for every OTEL_* setting
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
        if str(resource.attributes.get(SERVICE_NAME, "unknown_service")).startswith("unknown_service"):
            resource = resource.merge(Resource.create({SERVICE_NAME: service_name}))
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider, record_content=record_content)

    @property
    def enabled(self) -> bool:
        return self._exporter is not None

    def start_request(self, model: str | None = None) -> RequestTrace:
        """The root span; ``model`` is what the client asked for (``auto``, ``auto:swarm``, a route)."""
        if self._exporter is None:
            return NO_TRACE
        return self._exporter.start(model)

    def span(self, name: str, attrs: dict[str, Any] | None = None) -> _Scope | _NullScope:
        """A child of the current span (classify, decide, swarm plan/agent/aggregate, ...), as ``with``.

        Spans opened inside (an agent's upstream attempts) become its children. An exception marks
        the span failed with its type only: exception messages may quote the request.
        """
        current = _CURRENT.get()
        if current is None or not current[0].recording:
            return _NULL_SCOPE
        request, parent_id = current
        return _Scope(request, request._child(name, parent_id, dict(attrs) if attrs else {}, _INTERNAL), True)

    def upstream_span(self, cand: Candidate, call: UpstreamCall) -> _Scope | _NullScope:
        """One upstream attempt: ``chat <model>`` with the GenAI request attributes, as ``with``."""
        current = _CURRENT.get()
        if current is None or not current[0].recording:
            return _NULL_SCOPE
        request, parent_id = current
        attrs = _attempt_attrs(cand, call.backend, call.body)
        if self.record_content and "messages" in call.body:
            attrs["gen_ai.input.messages"] = _content(call.body["messages"])
        return _Scope(request, request._child(f"chat {call.backend.model}", parent_id, attrs, _CLIENT), False)

    def failed_attempt(self, cand: Candidate, call: UpstreamCall, kind: str, started_perf: float) -> None:
        """A stream attempt that failed before its first chunk: a closed span, after the fact."""
        current = _CURRENT.get()
        if current is None or not current[0].recording:
            return
        request, parent_id = current
        rec = request._child(f"chat {call.backend.model}", parent_id,
                             _attempt_attrs(cand, call.backend, call.body), _CLIENT, _wall_ns(started_perf))
        rec.error = kind
        rec.attrs["error.type"] = kind
        rec.end_ns = time.time_ns()

    def finished_stream(self, cand: Candidate, call_backend: Backend, model: Any, usage: Usage, cost: float,
                        started_perf: float, error_kind: str | None, parent: RequestTrace = NO_TRACE) -> None:
        """The attempt that streamed the answer, recorded when the stream ends (a child of ``parent``'s root)."""
        if not parent.recording or parent.root is None:
            return
        rec = parent._child(f"chat {call_backend.model}", parent.root.span_id, _attempt_attrs(cand, call_backend),
                            _CLIENT, _wall_ns(started_perf))
        wrapped = _Span(rec, parent)
        wrapped.succeeded(model, usage, cost)
        if error_kind:
            wrapped.failed(error_kind)
        rec.end_ns = time.time_ns()

    def force_flush(self, timeout: float = 10) -> bool:
        """Hand every finished request to the processors and flush them (tests, shutdown)."""
        if self._exporter is None or self._provider is None:
            return True
        return self._exporter.flush(timeout) and self._provider.force_flush(int(timeout * 1000))

    def shutdown(self) -> None:
        if self._exporter is not None and self._provider is not None:
            self._exporter.flush()
            self._exporter.close()
            self._provider.shutdown()
