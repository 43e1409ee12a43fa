"""Spans cross OTLP/HTTP to a receiver in this process: the tree of a fallback request (plain and
streamed) and of a swarm request, the GenAI attributes, the router.* attributes, and no prompt text
unless content recording is switched on. Also ``Tracer.from_env`` and the standard OTEL_* switches."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from router.observability.access_log import AccessLog
from router.observability.tracing import Tracer
from tests.conftest import Gateway, default_policy
from tests.support.otlp import STATUS_ERROR, OTLPReceiver, ReceivedSpan, SpanTree, trace_of

PROMPT = "Prove that the square root of 2 is irrational, step by step. Marker: ZEBRA-QUOKKA-4417."
MARKER = "ZEBRA-QUOKKA-4417"
GEN_AI_ATTEMPT = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model")
DEMO_SERVER = {"kimi": "kimi", "gpt": "gpt", "gpt-mini": "gpt", "claude": "claude"}  # backend -> demo server


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    """Listed before ``gateway_factory`` so it outlives the gateways (fixtures tear down in reverse)."""
    with OTLPReceiver() as rx:
        yield rx


def otlp_tracer(receiver: OTLPReceiver, **kwargs: Any) -> Tracer:
    """A real SDK provider whose spans go over OTLP/HTTP (protobuf) to ``receiver``."""
    provider = TracerProvider(**kwargs.pop("provider_kwargs", {}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=receiver.traces_endpoint)))
    return Tracer(provider, **kwargs)


def wait_for_trace(receiver: OTLPReceiver, request_id: str, *, timeout: float = 10) -> SpanTree:
    def arrived(spans: list[ReceivedSpan]) -> bool:
        return any(s.attributes.get("router.request_id") == request_id for s in spans)

    return trace_of(receiver.wait_for(arrived, timeout=timeout), request_id)


def fail_primary(gw: Gateway, body: dict[str, Any]) -> str:
    """Make the backend the decision picks first fail every request; returns the chosen route."""
    decision = gw.client().post("/route", body=body, cast_to=object)
    assert isinstance(decision, dict)
    chosen = decision["choice"]
    gw.demo.set_behavior(DEMO_SERVER[chosen.partition(":")[0]], error_rate=1.0)
    return str(chosen)


def chat(gw: Gateway, body: dict[str, Any]) -> tuple[dict[str, str], str]:
    """(response headers, answer text) through the OpenAI SDK, streamed or not."""
    client = gw.client()
    raw = client.chat.completions.with_raw_response.create(**body)
    headers = dict(raw.headers)
    parsed: Any = raw.parse()
    if body.get("stream"):
        text = "".join(c.choices[0].delta.content or "" for c in parsed if c.choices)
    else:
        text = parsed.choices[0].message.content or ""
    return headers, text


def all_attribute_text(spans: list[ReceivedSpan]) -> str:
    return "\n".join(f"{s.name} {s.attributes!r} {s.resource!r}" for s in spans)


# ---------------------------------------------------------------- the fallback tree


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_fallback_request_span_tree(receiver: OTLPReceiver, gateway_factory: Callable[..., Gateway],
                                    stream: bool) -> None:
    gw = gateway_factory(default_policy(), tracer=otlp_tracer(receiver))
    body: dict[str, Any] = {"model": "auto", "messages": [{"role": "user", "content": PROMPT}]}
    failed_route = fail_primary(gw, body)
    receiver.clear()  # the dry run above made no spans, but start clean anyway
    headers, answer = chat(gw, {**body, "stream": stream})
    assert answer
    fallbacks = int(headers["x-router-fallbacks"])
    assert fallbacks >= 1, headers

    tree = wait_for_trace(receiver, headers["x-router-request-id"])
    root = tree.root
    outline = tree.render()
    assert root.name == "router.request", outline
    kids = tree.children(root)
    names = [k.name for k in kids]
    assert names[:2] == ["router.classify", "router.decide"], outline
    attempts = [k for k in kids if k.name.startswith("chat ")]
    assert len(attempts) == fallbacks + 1 >= 2, outline  # every attempt, as siblings under the root
    assert all(not tree.children(a) for a in attempts), outline

    *failed, answered = attempts
    for span in failed:
        assert span.attributes["error.type"] in ("http_5xx", "http_4xx"), outline
        assert span.status_code == STATUS_ERROR
    assert failed[0].attributes["router.route"] == failed_route
    assert "error.type" not in answered.attributes and answered.status_code != STATUS_ERROR, outline
    assert answered.attributes["router.route"] == headers["x-router-route"] != failed_route
    for span in attempts:
        for key in GEN_AI_ATTEMPT:
            assert span.attributes.get(key), f"{span.name} lacks {key}:\n{outline}"
        assert span.attributes["gen_ai.operation.name"] == "chat"
        assert span.name == f"chat {span.attributes['gen_ai.request.model']}"
        assert root.start_ns <= span.start_ns <= span.end_ns <= root.end_ns, outline
    assert answered.attributes["gen_ai.response.model"]
    assert answered.attributes["gen_ai.usage.input_tokens"] > 0
    assert answered.attributes["gen_ai.usage.output_tokens"] > 0
    assert answered.attributes["router.cost_usd"] > 0
    assert failed[0].start_ns <= answered.start_ns

    classify = kids[0]
    assert classify.attributes["router.task_type"] == headers["x-router-task-type"]
    assert 0 <= classify.attributes["router.confidence"] <= 1
    assert classify.attributes["router.label_source"] in ("model", "rule")  # issue 17
    assert kids[1].attributes["router.route"] == failed_route

    # The root carries the whole request's story: decision, outcome, GenAI usage.
    attrs = root.attributes
    assert attrs["router.task_type"] == headers["x-router-task-type"]
    assert attrs["router.confidence"] == pytest.approx(float(headers["x-router-confidence"]), abs=1e-4)
    assert attrs["router.route"] == headers["x-router-route"]
    assert attrs["router.mode"] == headers["x-router-mode"]
    assert attrs["router.status"] == "ok" and root.status_code != STATUS_ERROR
    assert attrs["router.fallbacks"] == fallbacks
    assert attrs["router.estimated_cost_usd"] == pytest.approx(float(headers["x-router-estimated-cost-usd"]))
    assert attrs["router.cost_usd"] == pytest.approx(answered.attributes["router.cost_usd"])
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "auto"
    assert attrs["gen_ai.response.model"] == answered.attributes["gen_ai.response.model"]
    assert attrs["gen_ai.provider.name"] == answered.attributes["gen_ai.provider.name"]
    assert attrs["gen_ai.usage.input_tokens"] == answered.attributes["gen_ai.usage.input_tokens"]
    assert attrs["gen_ai.usage.output_tokens"] == answered.attributes["gen_ai.usage.output_tokens"]

    # No prompt or answer text anywhere on the wire by default.
    wire = b"".join(receiver.raw_bodies)
    assert MARKER.encode() not in wire
    assert answer[:40].encode() not in wire
    assert MARKER not in all_attribute_text(tree.spans)


def test_every_route_failing_marks_the_root_failed(receiver: OTLPReceiver,
                                                   gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(default_policy(), tracer=otlp_tracer(receiver))
    for name in ("kimi", "gpt", "claude"):
        gw.demo.set_behavior(name, error_rate=1.0)
    client = gw.client()
    raw = client.chat.completions.with_raw_response  # headers are on the error response too
    with pytest.raises(Exception) as info:
        raw.create(model="auto", messages=[{"role": "user", "content": PROMPT}])
    assert getattr(info.value, "status_code", None) == 502
    spans = receiver.wait_for(lambda s: any(x.name == "router.request" for x in s))
    root = next(s for s in spans if s.name == "router.request")
    tree = SpanTree([s for s in spans if s.trace_id == root.trace_id])
    assert root.status_code == STATUS_ERROR
    assert root.attributes["error.type"] == root.attributes["router.status"] == "upstream_error"
    attempts = [k for k in tree.children(root) if k.name.startswith("chat ")]
    assert len(attempts) >= 2 and all(a.attributes.get("error.type") for a in attempts), tree.render()


def test_infeasible_request_root_span(receiver: OTLPReceiver, gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(default_policy(), tracer=otlp_tracer(receiver))
    client = gw.client()
    with pytest.raises(Exception) as info:
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": PROMPT}],
                                       extra_headers={"X-Router-Max-Cost": "0.0000001"})
    assert getattr(info.value, "status_code", None) == 400
    spans = receiver.wait_for(lambda s: any(x.name == "router.request" for x in s))
    root = next(s for s in spans if s.name == "router.request")
    assert root.attributes["error.type"] == "route_infeasible"
    assert root.attributes["router.status"] == "infeasible"
    names = {s.name for s in spans if s.trace_id == root.trace_id}
    assert {"router.classify", "router.decide"} <= names
    assert not any(n.startswith("chat ") for n in names)


# ---------------------------------------------------------------- content is opt-in


def test_prompt_recorded_only_when_opted_in(receiver: OTLPReceiver, gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(default_policy(), tracer=otlp_tracer(receiver, record_content=True))
    headers, _ = chat(gw, {"model": "auto", "messages": [{"role": "user", "content": PROMPT}]})
    tree = wait_for_trace(receiver, headers["x-router-request-id"])
    attempt = next(s for s in tree.spans if s.name.startswith("chat "))
    assert MARKER in attempt.attributes["gen_ai.input.messages"]


def test_dry_run_makes_no_spans(receiver: OTLPReceiver, gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(default_policy(), tracer=otlp_tracer(receiver))
    gw.client().post("/route", body={"model": "auto", "messages": [{"role": "user", "content": PROMPT}]},
                     cast_to=object)
    headers, _ = chat(gw, {"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    spans = receiver.wait_for(lambda s: any(x.name == "router.request" for x in s))
    assert {s.trace_id for s in spans} == {wait_for_trace(receiver, headers["x-router-request-id"]).root.trace_id}


def test_sampler_is_respected(receiver: OTLPReceiver, gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(default_policy(), tracer=otlp_tracer(receiver, provider_kwargs={"sampler": ALWAYS_OFF}))
    headers, answer = chat(gw, {"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    assert answer and headers["x-router-route"]
    gw.services.tracer.force_flush()
    assert receiver.spans == []


# ---------------------------------------------------------------- configuration by OTEL_* variables


def test_from_env_exports_over_otlp_http(receiver: OTLPReceiver, gateway_factory: Callable[..., Gateway],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "router-under-test")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    tracer = Tracer.from_env()
    assert tracer.enabled
    gw = gateway_factory(default_policy(), tracer=tracer)
    headers, _ = chat(gw, {"model": "auto", "messages": [{"role": "user", "content": PROMPT}]})
    tree = wait_for_trace(receiver, headers["x-router-request-id"])
    assert tree.root.resource["service.name"] == "router-under-test"
    assert tree.root.scope == "model-router"
    assert {"router.classify", "router.decide"} <= {s.name for s in tree.spans}
    assert "gzip" in receiver.encodings


def test_from_env_default_service_name(receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.traces_endpoint)
    tracer = Tracer.from_env()
    assert tracer.enabled
    trace = tracer.start_request("auto")
    trace.end({"router.request_id": "rtr-1"})
    tracer.shutdown()  # flushes the batch processor
    root = receiver.wait_for(bool)[0]
    assert root.resource["service.name"] == "model-router"


@pytest.mark.parametrize("env", [
    {},
    {"OTEL_EXPORTER_OTLP_ENDPOINT": ""},
    {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"},
    {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"},
], ids=["unset", "empty", "sdk-disabled", "exporter-none"])
def test_tracing_off_unless_configured(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED",
                 "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    tracer = Tracer.from_env()
    assert not tracer.enabled
    trace = tracer.start_request("auto")
    assert trace.trace_id is None
    with trace.activate(), tracer.span("router.classify") as span:
        span.set_attributes({"router.task_type": "simple"})  # a no-op, not an error
    trace.end({"router.status": "ok"})


# ---------------------------------------------------------------- swarm


SWARM_PROMPT = ("Research each of these five cities for a weekend trip and recommend one thing to do in each:\n"
                "- Lisbon\n- Kyoto\n- Montreal\n- Cape Town\n- Reykjavik")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_swarm_request_span_tree(receiver: OTLPReceiver, gateway_factory: Callable[..., Gateway],
                                 stream: bool) -> None:
    gw = gateway_factory(default_policy(), tracer=otlp_tracer(receiver))
    if gw.services.pipeline.swarm is None:
        pytest.skip("router/swarm does not provide `Swarm` yet (swarm mode is being built); "
                    "this test runs as soon as it does")
    body = {"model": "auto:swarm", "messages": [{"role": "user", "content": SWARM_PROMPT}], "stream": stream}
    headers, answer = chat(gw, body)
    assert headers["x-router-route"] == "swarm" and answer
    tree = wait_for_trace(receiver, headers["x-router-request-id"], timeout=20)
    outline = tree.render()
    root = tree.root
    assert root.attributes["router.route"] == "swarm" and root.attributes["router.mode"] == "swarm"
    kids = tree.children(root)
    plans = [k for k in kids if k.name == "router.swarm.plan"]
    agents = [k for k in kids if k.name == "router.swarm.agent"]
    aggregates = [k for k in kids if k.name == "router.swarm.aggregate"]
    assert len(plans) == 1 and len(aggregates) == 1, outline
    assert len(agents) == 5, outline
    assert plans[0].end_ns <= min(a.start_ns for a in agents), outline
    assert max(a.end_ns for a in agents) <= aggregates[0].start_ns, outline
    for role in (plans[0], *agents, aggregates[0]):
        attempts = [s for _, s in tree.walk(role) if s.name.startswith("chat ")]
        assert attempts, f"{role.name} has no upstream attempt span under it:\n{outline}"
        for span in attempts:
            for key in GEN_AI_ATTEMPT:
                assert span.attributes.get(key), f"{span.name} lacks {key}:\n{outline}"
    answered = [s for s in tree.spans if s.name.startswith("chat ") and "error.type" not in s.attributes]
    assert all(s.attributes.get("gen_ai.usage.output_tokens", 0) > 0 for s in answered), outline
    assert MARKER not in all_attribute_text(tree.spans)
    assert "Kyoto" not in all_attribute_text(tree.spans)  # item text is prompt text


# ---------------------------------------------------------------- the cost benchmark still runs


def test_observability_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """benchmarks/bench_observability.py drives the real objects; a tiny run keeps it from rotting.
    (The 100 µs budget is checked by running the benchmark itself, not here: CI machines are noisy.)"""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_observability.py"
    spec = importlib.util.spec_from_file_location("bench_observability", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--requests", "200", "--repeats", "1", "--budget-us", "1e9"]) == 0
    out = capsys.readouterr().out
    assert "metrics + tracing on the hot path" in out
    handed = int(out.split("spans handed to the batch processor: ")[1].split()[0])
    assert handed >= 2 * 200 * 4  # warm-up + timed run, at least 4 spans a request, none dropped


# ---------------------------------------------------------------- the access log line


def test_access_log_line_has_the_decision_and_the_trace_id(receiver: OTLPReceiver,
                                                            gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(default_policy(), tracer=otlp_tracer(receiver))
    stream = io.StringIO()
    old = gw.services.access_log
    gw.services.access_log = gw.services.pipeline.accounting.access_log = AccessLog(stream)
    old.close()
    headers, _ = chat(gw, {"model": "auto", "messages": [{"role": "user", "content": PROMPT}], "stream": True})
    with pytest.raises(openai.BadRequestError):  # infeasible: logged too, with its decision
        gw.client().chat.completions.create(model="auto", messages=[{"role": "user", "content": PROMPT}],
                                            extra_headers={"X-Router-Max-Cost": "0.0000001"})
    tree = wait_for_trace(receiver, headers["x-router-request-id"])
    gw.services.access_log.close()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2, lines
    ok, infeasible = lines
    assert ok["event"] == "chat" and ok["status"] == "ok" and ok["stream"] is True
    assert ok["request_id"] == headers["x-router-request-id"]
    assert ok["trace_id"] == tree.root.trace_id  # one id to find the trace from the log line
    assert ok["route"] == headers["x-router-route"] and ok["task_type"] == headers["x-router-task-type"]
    assert ok["confidence"] == pytest.approx(float(headers["x-router-confidence"]), abs=1e-4)
    assert ok["estimated_cost_usd"] > 0 and ok["cost_usd"] > 0 and ok["ttft_ms"] > 0
    assert ok["duration_ms"] >= ok["ttft_ms"] and ok["decision_ms"] >= 0
    assert ok["tokens"]["input"] > 0 and ok["tokens"]["output"] > 0
    assert isinstance(ok["fallback_chain"], list) and ok["fallbacks"] == 0
    assert infeasible["status"] == "infeasible" and infeasible["route"] == "none"
    assert set(infeasible["rejected"]) and all("cost" in r for r in infeasible["rejected"].values())
    assert MARKER not in stream.getvalue()


# ---------------------------------------------------------------- every door, the same spans


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_every_door_makes_the_same_span_tree(receiver: OTLPReceiver, gateway_factory: Callable[..., Gateway],
                                             stream: bool) -> None:
    """Chat completions, Messages and Responses: one root with the decision and the door's api, classify
    and decide under it, one attempt span for the upstream call."""
    gw = gateway_factory(default_policy(), tracer=otlp_tracer(receiver))
    content = [{"role": "user", "content": PROMPT}]
    requests = {"chat": ("/v1/chat/completions", {"model": "kimi:thinking", "messages": content}),
                "messages": ("/v1/messages", {"model": "kimi:thinking", "max_tokens": 256, "messages": content}),
                "responses": ("/v1/responses", {"model": "kimi:thinking", "input": PROMPT})}
    for api, (path, body) in requests.items():
        with httpx.stream("POST", f"{gw.url}{path}", json={**body, "stream": stream}, timeout=20) as resp:
            assert resp.status_code == 200
            resp.read()
        tree = wait_for_trace(receiver, resp.headers["x-router-request-id"])
        root = tree.root
        assert root.name == "router.request" and root.attributes["router.api"] == api
        assert root.attributes["router.route"] == resp.headers["x-router-route"] == "kimi:thinking"
        assert root.attributes["router.status"] == "ok" and root.attributes["gen_ai.usage.output_tokens"] > 0
        assert [k.name for k in tree.children(root)][:2] == ["router.classify", "router.decide"]
        attempts = [s for s in tree.spans if s.name.startswith("chat ")]
        assert len(attempts) == 1 and attempts[0].parent_id == root.span_id


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_messages_to_claude_untranslated_makes_the_same_span_tree(receiver: OTLPReceiver,
                                                                  gateway_factory: Callable[..., Gateway],
                                                                  stream: bool) -> None:
    """/v1/messages routed to Claude goes as the client sent it (no chat round trip): still one root with
    the decision and the usage read off Claude's answer, classify and decide, one attempt span."""
    gw = gateway_factory(default_policy(), tracer=otlp_tracer(receiver))
    body = {"model": "claude:default", "max_tokens": 256, "stream": stream,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": PROMPT}]}
    with httpx.stream("POST", f"{gw.url}/v1/messages", json=body, timeout=20) as resp:
        assert resp.status_code == 200
        resp.read()
    assert gw.demo.stats("claude")["last_requests"][-1]["body"]["system"] == body["system"]  # sent as it came
    tree = wait_for_trace(receiver, resp.headers["x-router-request-id"])
    root = tree.root
    assert root.attributes["router.api"] == "messages" and root.attributes["router.route"] == "claude:default"
    assert root.attributes["router.status"] == "ok" and root.attributes["gen_ai.usage.output_tokens"] > 0
    assert root.attributes["gen_ai.usage.input_tokens"] > 0
    assert [k.name for k in tree.children(root)][:2] == ["router.classify", "router.decide"]
    attempts = [s for s in tree.spans if s.name.startswith("chat ")]
    assert len(attempts) == 1 and attempts[0].parent_id == root.span_id
