"""Per-request cost of metrics and tracing on the hot path, tracing off vs on.

One "request" here is exactly the observability work the gateway does for one chat request, through
the real objects: the root span (``Tracer.start_request`` / ``activate``), the ``router.classify`` and
``router.decide`` spans with their attributes, the classifier-confidence and decision-time
histograms, the in-flight gauge and circuit-state updates around the upstream attempt (as the
dispatcher makes them), the ``chat <model>`` attempt span with its GenAI attributes, the
upstream-latency histogram, and ``Accounting.finished`` (request counter, duration, overhead,
tokens, cost, budget, the root span's end). The upstream call, the classifier and the decision
themselves are not run: only what metrics and tracing add.

Scenarios:
- ``metrics, tracing off``: the default when no ``OTEL_*`` endpoint is set;
- ``metrics + tracing``: a real SDK ``TracerProvider`` + ``BatchSpanProcessor`` exporting to an
  exporter that drops each batch; the OTLP protobuf encoding a real exporter adds (in the batch
  thread, never on the request path) is measured apart;
- ``metrics + tracing, fallback stream``: a stream whose first route failed (two attempt spans);
- ``metrics + access log line``: the JSON line (enabled, to /dev/null), reported apart.

Columns: "hot path" is the CPU time of the thread that serves the request (``time.thread_time``): what
the event loop pays. "all CPU" adds every other thread of the process (span hand-off and batch
processor, flushed before the clock stops). "wall" is elapsed time, noisy on a busy machine. Exit
status 1 when metrics + tracing cost more than the budget on the hot path (100 µs by default).

    python benchmarks/bench_observability.py [--requests 20000] [--budget-us 100]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402

from router.dispatch.upstream import UpstreamCall, Usage  # noqa: E402
from router.engine.decide import Label, Limits, decide  # noqa: E402
from router.engine.live import LiveState  # noqa: E402
from router.engine.request_facts import extract_facts  # noqa: E402
from router.exchange import Routed  # noqa: E402
from router.observability.access_log import AccessLog  # noqa: E402
from router.observability.metrics import RouterMetrics  # noqa: E402
from router.observability.tracing import Tracer  # noqa: E402
from router.pipeline.accounting import Accounting  # noqa: E402
from router.policy.loader import load_policy_file  # noqa: E402
from router.protocol import parse_controls  # noqa: E402
from router.settings import PACKAGED_POLICY  # noqa: E402

ENV = {"KIMI_API_BASE": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "bench", "ANTHROPIC_API_KEY": "bench"}
BODY: dict[str, Any] = {"model": "auto", "messages": [{"role": "user", "content": "Prove that sqrt(2) is irrational."}]}


class DroppingExporter(SpanExporter):
    """Accepts every batch and drops it (a collector that is infinitely fast)."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class Bench:
    """The gateway's observability objects for one scenario, plus a prepared request."""

    def __init__(self, tracer: Tracer, access_log: AccessLog) -> None:
        loaded = load_policy_file(PACKAGED_POLICY, env=ENV)
        self.live = LiveState(loaded.policy)
        self.metrics = RouterMetrics()
        self.tracer = tracer
        self.accounting = Accounting(self.metrics, access_log)
        facts = extract_facts(BODY)
        self.label = Label("reasoning", 0.81)
        decision = decide(loaded.policy, facts, self.label, Limits(1.0, 180_000), self.live)
        assert decision.chosen is not None and len(decision.fallbacks) >= 1
        self.loaded, self.facts, self.decision = loaded, facts, decision
        self.controls = parse_controls({}, None)
        self.cand, self.fallback = decision.chosen, decision.fallbacks[0]
        self.call = UpstreamCall(self.cand.backend, loaded.policy.backends[self.cand.backend], "",
                                 {"model": "m", "messages": BODY["messages"], "temperature": 1.0, "top_p": 0.95})
        self.fallback_call = UpstreamCall(self.fallback.backend, loaded.policy.backends[self.fallback.backend], "",
                                          {"model": "m", "messages": BODY["messages"]})
        self.usage = Usage(input_tokens=12, output_tokens=240, reasoning_tokens=180)

    def routed(self, trace: Any) -> Routed:
        return Routed(request_id="rtr-bench", arrived=time.perf_counter(), body=BODY, facts=self.facts,
                      controls=self.controls, loaded=self.loaded, label=self.label, decision=self.decision,
                      decision_ms=0.2, trace=trace)

    def begin(self, backend: str) -> None:
        """What the dispatcher records when an attempt starts."""
        self.metrics.inflight.labels(backend).set(self.live.add_inflight(backend, 1))

    def end(self, backend: str) -> None:
        """... and when it ends (the circuit breaker's own bookkeeping is not observability)."""
        self.metrics.inflight.labels(backend).set(self.live.add_inflight(backend, -1))
        self.metrics.circuit_state.labels(backend).set(0)

    def request(self) -> None:
        """The non-streaming request path's observability calls, in order."""
        tracer, m = self.tracer, self.metrics
        trace = tracer.start_request("auto")
        with trace.activate():
            with tracer.span("router.classify") as span:
                span.set_attributes({"router.task_type": "reasoning", "router.confidence": 0.81})
            m.classifier_confidence.labels("reasoning").observe(0.81)
            with tracer.span("router.decide") as span:
                span.set_attributes({"router.route": self.cand.route,
                                     "router.estimated_cost_usd": self.cand.cost_usd})
            m.decision_duration.observe(0.0002)
            routed = self.routed(trace)
            backend = self.cand.backend
            self.begin(backend)
            with tracer.upstream_span(self.cand, self.call) as span:
                self.end(backend)
                span.succeeded("moonshotai/Kimi-K2.5", self.usage, 0.0012)
            m.upstream_duration.labels(backend).observe(0.4)
        self.accounting.finished(routed, route=self.cand.route, mode=self.cand.mode, status="ok", usage=self.usage,
                                 cost=0.0012, upstream_s=0.0, fallbacks=0)

    def fallback_stream(self) -> None:
        """A stream whose first route failed before its first chunk: two attempt spans, an error metric."""
        tracer, m = self.tracer, self.metrics
        trace = tracer.start_request("auto")
        with trace.activate():
            with tracer.span("router.classify") as span:
                span.set_attributes({"router.task_type": "reasoning", "router.confidence": 0.81})
            m.classifier_confidence.labels("reasoning").observe(0.81)
            with tracer.span("router.decide") as span:
                span.set_attributes({"router.route": self.cand.route,
                                     "router.estimated_cost_usd": self.cand.cost_usd})
            m.decision_duration.observe(0.0002)
            routed = self.routed(trace)
            started = time.perf_counter()
            self.begin(self.cand.backend)
            self.end(self.cand.backend)
            tracer.failed_attempt(self.cand, self.call, "http_5xx", started)
            m.upstream_errors.labels(self.cand.backend, "http_5xx").inc()
            m.fallbacks.labels(self.cand.route, self.fallback.route, "http_5xx").inc()
            self.begin(self.fallback.backend)
        self.end(self.fallback.backend)
        tracer.finished_stream(self.fallback, self.fallback_call.backend, "gpt-5.2", self.usage, 0.003,
                               started, None, parent=trace)
        m.upstream_duration.labels(self.fallback.backend).observe(0.4)
        self.accounting.finished(routed, route=self.fallback.route, mode=self.fallback.mode, status="ok",
                                 usage=self.usage, cost=0.003, upstream_s=0.0, fallbacks=1, ttft_s=0.05)


def measure(fn: Callable[[], None], n: int, repeats: int, flush: Callable[[], None] = lambda: None,
            ) -> tuple[float, float, float]:
    """Median (request-thread CPU µs, process CPU µs, wall µs) per call over ``repeats`` runs of ``n``.

    Request-thread CPU is the hot path: what the event loop's thread spends. Process CPU adds every
    other thread (the span hand-off and the batch span processor), flushed before the clock stops.
    """
    for _ in range(min(n, 2000)):  # warm up: label children created, code paths hot
        fn()
    flush()
    hot, total, walls = [], [], []
    for _ in range(repeats):
        gc.collect()
        thread0, cpu0, wall0 = time.thread_time_ns(), time.process_time_ns(), time.perf_counter_ns()
        for _ in range(n):
            fn()
        hot.append((time.thread_time_ns() - thread0) / n / 1000)
        flush()
        total.append((time.process_time_ns() - cpu0) / n / 1000)
        walls.append((time.perf_counter_ns() - wall0) / n / 1000)
    return statistics.median(hot), statistics.median(total), statistics.median(walls)


def traced() -> tuple[Tracer, TracerProvider, DroppingExporter]:
    exporter = DroppingExporter()
    provider = TracerProvider()
    # A queue deep enough that no span is dropped: every span costs what it costs in production.
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=1_000_000, max_export_batch_size=512))
    return Tracer(provider), provider, exporter


def otlp_encode_cost(n: int) -> float:
    """µs per request to encode its spans as OTLP protobuf (done in the batch thread, not inline)."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    bench = Bench(Tracer(provider), AccessLog(enabled=False))
    for _ in range(200):
        bench.request()
    bench.tracer.force_flush()  # spans reach the processors from a background thread
    spans = memory.get_finished_spans()
    per_request = len(spans) / 200
    start = time.perf_counter_ns()
    for _ in range(max(1, n // 200)):
        encode_spans(spans).SerializeToString()
    elapsed_us = (time.perf_counter_ns() - start) / 1000 / max(1, n // 200)
    provider.shutdown()
    return elapsed_us / len(spans) * per_request


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000, help="requests per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per scenario (median reported)")
    parser.add_argument("--budget-us", type=float, default=100.0, help="fail above this metrics+tracing cost")
    args = parser.parse_args(argv)
    n, repeats = args.requests, args.repeats

    rows: list[tuple[str, float, float, float]] = []
    off = Bench(Tracer(None), AccessLog(enabled=False))
    rows.append(("metrics, tracing off", *measure(off.request, n, repeats)))

    tracer, _provider, exporter = traced()
    on = Bench(tracer, AccessLog(enabled=False))

    def flush() -> None:
        tracer.force_flush()

    rows.append(("metrics + tracing", *measure(on.request, n, repeats, flush)))
    rows.append(("metrics + tracing, fallback stream", *measure(on.fallback_stream, n, repeats, flush)))
    tracer.shutdown()

    with open(os.devnull, "w") as devnull:
        logged = Bench(Tracer(None), AccessLog(devnull))
        rows.append(("metrics + access log line", *measure(logged.request, n, repeats)))
        logged.accounting.access_log.close()
    encode_us = otlp_encode_cost(n)

    print(f"python {sys.version.split()[0]}, {n} requests x {repeats} runs (median), µs per request")
    print(f"{'scenario':<38}{'hot path':>10}{'all CPU':>10}{'wall':>10}")
    for name, hot, total, wall in rows:
        print(f"{name:<38}{hot:>10.1f}{total:>10.1f}{wall:>10.1f}")
    print(f"{'  tracing alone (on - off)':<38}{rows[1][1] - rows[0][1]:>10.1f}{rows[1][2] - rows[0][2]:>10.1f}")
    print(f"{'  access log line alone':<38}{rows[3][1] - rows[0][1]:>10.1f}{rows[3][2] - rows[0][2]:>10.1f}")
    print(f"{'  OTLP protobuf encoding (exporter)':<38}{'':>10}{encode_us:>10.1f}")
    print(f"spans handed to the batch processor: {exporter.spans}")
    worst = max(rows[1][1], rows[2][1])
    verdict = "within" if worst <= args.budget_us else "OVER"
    print(f"metrics + tracing on the hot path: {worst:.1f} µs per request (worst path): {verdict} the "
          f"{args.budget_us:g} µs budget; all threads: {max(rows[1][2], rows[2][2]):.1f} µs CPU")
    return 0 if worst <= args.budget_us else 1


if __name__ == "__main__":
    sys.exit(main())
