"""A small OTLP/HTTP trace receiver for tests: what a collector would get, decoded to plain spans.

    with OTLPReceiver() as receiver:
        exporter = OTLPSpanExporter(endpoint=receiver.traces_endpoint)   # .../v1/traces
        ...
        spans = receiver.wait_for(lambda spans: any(s.name == "router.request" for s in spans))

It is a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (port 0) that accepts ``POST /v1/traces`` with an
``ExportTraceServiceRequest`` protobuf body (gzip or deflate ``Content-Encoding`` understood, as the
OTLP exporter's ``OTEL_EXPORTER_OTLP_COMPRESSION`` may send) and answers with an empty
``ExportTraceServiceResponse``. Everything received is kept, both decoded and as raw bytes, so a test
can also search the wire bytes for text that must not be there.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

# OTLP span status codes (opentelemetry.proto.trace.v1.Status.StatusCode)
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as a collector would see it; ids are hex strings, ``parent_id`` is "" for a root."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    status_code: int
    start_ns: int
    end_ns: int
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str = ""


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind)


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


def decode_export_request(body: bytes) -> list[ReceivedSpan]:
    """Every span of one ``ExportTraceServiceRequest`` (protobuf bytes), flattened."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attrs(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(ReceivedSpan(
                    name=span.name, trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                    parent_id=span.parent_span_id.hex(), attributes=_attrs(span.attributes),
                    status_code=span.status.code, start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano, resource=resource, scope=scope_spans.scope.name))
    return spans


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


class OTLPReceiver:
    """Receives OTLP/HTTP protobuf trace exports on loopback and keeps every span."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self.raw_bodies: list[bytes] = []  # decompressed protobuf bodies, for byte-level searches
        self.requests = 0
        self.encodings: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path.split("?")[0] != "/v1/traces":
                    self.send_error(404)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                encoding = self.headers.get("Content-Encoding") or ""
                try:
                    body = _decompress(self.rfile.read(length), encoding)
                    spans = decode_export_request(body)
                except Exception as exc:  # a malformed export is a test failure, shown as a 400
                    self.send_error(400, f"cannot decode the export: {exc}")
                    return
                receiver._add(body, spans, encoding or "identity")
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)

    # -- lifecycle
    def start(self) -> OTLPReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- addresses
    @property
    def endpoint(self) -> str:
        """Base URL, as ``OTEL_EXPORTER_OTLP_ENDPOINT`` takes it (the exporter appends /v1/traces)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def traces_endpoint(self) -> str:
        """Full URL, as ``OTLPSpanExporter(endpoint=...)`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` take it."""
        return f"{self.endpoint}/v1/traces"

    # -- what arrived
    def _add(self, body: bytes, spans: list[ReceivedSpan], encoding: str) -> None:
        with self._lock:
            self.requests += 1
            self.raw_bodies.append(body)
            self.encodings.append(encoding)
            self._spans.extend(spans)

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()
            self.raw_bodies.clear()
            self.encodings.clear()

    def wait_for(self, predicate: Callable[[list[ReceivedSpan]], bool], *,
                 timeout: float = 10) -> list[ReceivedSpan]:
        """Poll until ``predicate(spans)`` holds; returns the spans. Raises TimeoutError with what came."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                names = sorted({s.name for s in spans})
                raise TimeoutError(f"after {timeout:.0f}s the receiver has {len(spans)} spans: {names}")
            time.sleep(0.05)


# ---------------------------------------------------------------- reading a received trace


@dataclass
class SpanTree:
    """The spans of one trace, navigable from the root."""

    spans: list[ReceivedSpan]

    @property
    def root(self) -> ReceivedSpan:
        roots = [s for s in self.spans if not s.parent_id]
        assert len(roots) == 1, f"expected one root span, got {[s.name for s in roots]}"
        return roots[0]

    def children(self, span: ReceivedSpan, name: str | None = None) -> list[ReceivedSpan]:
        kids = [s for s in self.spans if s.parent_id == span.span_id and (name is None or s.name == name)]
        return sorted(kids, key=lambda s: s.start_ns)

    def named(self, name: str) -> list[ReceivedSpan]:
        return sorted((s for s in self.spans if s.name == name), key=lambda s: s.start_ns)

    def walk(self, span: ReceivedSpan | None = None, depth: int = 0) -> Iterator[tuple[int, ReceivedSpan]]:
        span = span or self.root
        yield depth, span
        for kid in self.children(span):
            yield from self.walk(kid, depth + 1)

    def render(self) -> str:
        """An indented outline, for assertion messages."""
        return "\n".join(f"{'  ' * d}{s.name} {s.attributes}" for d, s in self.walk())


def traces(spans: list[ReceivedSpan]) -> dict[str, SpanTree]:
    """Spans grouped by trace id."""
    grouped: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        grouped.setdefault(span.trace_id, []).append(span)
    return {trace_id: SpanTree(group) for trace_id, group in grouped.items()}


def trace_of(spans: list[ReceivedSpan], request_id: str) -> SpanTree:
    """The trace whose root span carries ``router.request_id == request_id``."""
    for tree in traces(spans).values():
        if any(s.attributes.get("router.request_id") == request_id for s in tree.spans if not s.parent_id):
            return tree
    raise LookupError(f"no trace with a root span for request {request_id}")
