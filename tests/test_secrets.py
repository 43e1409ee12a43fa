"""Nothing secret leaves the gateway through its telemetry.

A gateway whose upstreams really require provider keys (the demo servers reject requests without
them) and whose clients need a bearer key serves plain, streamed, fallback, failing, infeasible,
unauthorised and (when available) swarm requests, all carrying a recognisable prompt. Then the access
log, every Python log record, everything written to stdout/stderr, ``/metrics``, the spans as they
crossed OTLP/HTTP, ``/v1/router/status``, ``/v1/models`` and the error bodies are searched: neither a key
nor the prompt may appear in any of them.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from router.demo import DemoServerSpec, DemoUpstreams
from router.observability.access_log import AccessLog
from router.observability.tracing import Tracer
from tests.conftest import Gateway, default_policy
from tests.support.otlp import OTLPReceiver

KIMI_KEY = "sk-kimi-SECRET-7f3a9c1e55"
GPT_KEY = "sk-proj-SECRET-5d1e8b2a77"
CLAUDE_KEY = "sk-ant-api03-SECRET-2c4f6a9d31"
CLIENT_KEY = "client-SECRET-456-b8e0d2"
MARKER = "PLATYPUS-OBSIDIAN-9931"
PROMPT = f"Please explain, step by step, why the sky is blue. Reference code {MARKER}."
SECRETS = {"kimi key": KIMI_KEY, "gpt key": GPT_KEY, "claude key": CLAUDE_KEY, "client key": CLIENT_KEY,
           "prompt": MARKER}
# Distinctive tails, so a key shown half-masked ("sk-kimi-SEC…1e55") is still caught.
CLIENT_LOGGERS = ("openai", "httpx", "httpcore")
FRAGMENTS = {f"{name} (tail)": value[-10:] for name, value in SECRETS.items() if name != "prompt"}


@pytest.fixture
def keyed_demo() -> Iterator[DemoUpstreams]:
    """Demo upstreams that answer 401 unless the right provider key is sent."""
    demo = DemoUpstreams([DemoServerSpec("kimi", "vllm", api_key=KIMI_KEY),
                          DemoServerSpec("gpt", "openai", api_key=GPT_KEY),
                          DemoServerSpec("claude", "anthropic", api_key=CLAUDE_KEY)]).start()
    yield demo
    demo.stop()


def keyed_policy() -> dict[str, Any]:
    # The demo wiring overwrites KIMI_API_KEY / OPENAI_API_KEY / ANTHROPIC_API_KEY, so the keys come
    # from variables of our own — which is also how an operator may name them.
    return default_policy(backends={
        "kimi": {"api_key_env": "TEST_KIMI_KEY", "requires_key": True},
        "gpt": {"api_key_env": "TEST_GPT_KEY"},
        "gpt-mini": {"api_key_env": "TEST_GPT_KEY"},
        "claude": {"api_key_env": "TEST_CLAUDE_KEY"},
    })


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as rx:
        yield rx


def test_no_key_or_prompt_in_logs_metrics_spans_or_errors(
        receiver: OTLPReceiver, keyed_demo: DemoUpstreams, gateway_factory: Callable[..., Gateway],
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level: debug output must be clean too
    # (the receiver outlives the gateway: fixtures tear down in reverse order of setup)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=receiver.traces_endpoint)))
    gw = gateway_factory(keyed_policy(), demo=keyed_demo, tracer=Tracer(provider),
                         settings={"client_keys": f"other-client-key,{CLIENT_KEY}"},
                         env={"TEST_KIMI_KEY": KIMI_KEY, "TEST_GPT_KEY": GPT_KEY, "TEST_CLAUDE_KEY": CLAUDE_KEY})
    access = io.StringIO()
    old_log = gw.services.access_log
    gw.services.access_log = gw.services.pipeline.accounting.access_log = AccessLog(access)
    old_log.close()

    seen: dict[str, str] = {}  # what a client or an operator can read, by where it came from
    ids = drive_traffic(gw, keyed_demo, seen)

    gw.services.tracer.force_flush()
    gw.services.access_log.close()  # drains the queue into `access`
    seen["access log"] = access.getvalue()
    seen["spans (OTLP wire bytes)"] = b"".join(receiver.raw_bodies).decode("utf-8", "replace")
    seen["span attributes"] = "\n".join(f"{s.name} {s.attributes!r} {s.resource!r}" for s in receiver.spans)
    span_count = len(receiver.spans)

    # The test's own clients (openai SDK, httpx) log their requests at debug level; they are not
    # the gateway's logs.
    records = [r for r in caplog.records if not r.name.startswith(CLIENT_LOGGERS)]
    seen["python log records"] = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''} {r.stack_info or ''}" for r in records)
    for handler in logging.getLogger().handlers:  # whatever the root logger's handlers wrote
        stream = getattr(handler, "stream", None)
        if isinstance(stream, io.StringIO):
            seen[f"root handler {type(handler).__name__}"] = stream.getvalue()
    out, err = capfd.readouterr()
    seen["stdout"], seen["stderr"] = out, err

    # The captures are not empty by accident: each one saw what it should.
    lines = seen["access log"].splitlines()
    assert len(lines) >= len(ids) and all(i in seen["access log"] for i in ids), seen["access log"]
    assert span_count >= 3 * len(ids)
    assert "router_requests_total" in seen["/metrics"]
    assert keyed_demo.stats("kimi")["requests"] > 0 and keyed_demo.stats("claude")["requests"] > 0
    for name in ("kimi", "gpt", "claude"):  # every key was sent, and accepted
        assert keyed_demo.stats(name)["rejected"] == 0, f"{name}: requests without the right key"

    leaks = [f"{name} found in {where}" for where, text in seen.items()
             for name, value in {**SECRETS, **FRAGMENTS}.items() if value in text]
    assert not leaks, "\n".join(leaks)


def drive_traffic(gw: Gateway, demo: DemoUpstreams, seen: dict[str, str]) -> list[str]:
    """Every kind of request, with the prompt; returns the request ids answered with a decision."""
    client = gw.client(api_key=CLIENT_KEY)
    messages = [{"role": "user", "content": PROMPT}]
    ids: list[str] = []

    def keep(raw: Any) -> None:
        ids.append(raw.headers["x-router-request-id"])

    raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages)
    assert MARKER in (raw.parse().choices[0].message.content or "")  # the demo quotes the prompt back
    keep(raw)
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages, stream=True,
                                                           stream_options={"include_usage": True})
    assert MARKER in "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    keep(raw)
    for model in ("kimi:instant", "gpt:default", "claude:default"):  # every provider key in use
        for stream in (False, True):
            raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, stream=stream)
            body = raw.parse()
            if stream:
                list(body)
            keep(raw)

    if gw.services.pipeline.swarm is not None:
        items = "\n".join(f"- item {MARKER} number {i}" for i in range(3))
        raw = client.chat.completions.with_raw_response.create(
            model="auto:swarm", messages=[{"role": "user", "content": f"Explain each:\n{items}"}])
        keep(raw)

    demo.set_behavior("kimi", error_rate=1.0)  # fallback from kimi, plain and streamed
    for stream in (False, True):
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages, stream=stream)
        assert int(raw.headers["x-router-fallbacks"]) >= 1
        if stream:
            list(raw.parse())
        keep(raw)
    demo.set_behavior("kimi", fail_after_chunks=2, error_rate=0.0)  # dies mid-stream
    raw = client.chat.completions.with_raw_response.create(model="kimi:instant", messages=messages, stream=True)
    keep(raw)
    with pytest.raises(openai.APIError) as mid_stream:
        list(raw.parse())
    seen["mid-stream error"] = f"{mid_stream.value} {mid_stream.value.body!r}"
    demo.set_behavior("kimi", fail_after_chunks=None)

    # Errors: every route failing, an infeasible ceiling, bad and missing client keys, a bad body.
    http = httpx.Client(base_url=gw.base_url, timeout=30)
    auth = {"Authorization": f"Bearer {CLIENT_KEY}"}
    for name in ("kimi", "gpt", "claude"):
        demo.set_behavior(name, error_rate=1.0)
    errors = {
        "all routes failing": http.post("/chat/completions", headers=auth,
                                        json={"model": "auto", "messages": messages}),
        "all routes failing (stream)": http.post("/chat/completions", headers=auth,
                                                 json={"model": "auto", "messages": messages, "stream": True}),
    }
    for name in ("kimi", "gpt", "claude"):
        demo.set_behavior(name, error_rate=0.0)
    errors["infeasible"] = http.post("/chat/completions", headers={**auth, "X-Router-Max-Cost": "0.00000001"},
                                     json={"model": "auto", "messages": messages})
    errors["wrong client key"] = http.post("/chat/completions",
                                           headers={"Authorization": f"Bearer {CLIENT_KEY}-wrong"},
                                           json={"model": "auto", "messages": messages})
    errors["no client key"] = http.post("/chat/completions", json={"model": "auto", "messages": messages})
    errors["unknown model"] = http.post("/chat/completions", headers=auth,
                                        json={"model": "no-such-model", "messages": messages})
    assert errors["all routes failing"].status_code == 502
    assert errors["infeasible"].status_code == 400
    assert errors["wrong client key"].status_code == errors["no client key"].status_code == 401
    assert errors["unknown model"].status_code == 404
    for name, response in errors.items():
        seen[f"error body: {name}"] = f"{response.status_code} {response.headers!r} {response.text}"

    for path in ("/router/status", "/models"):
        response = http.get(path, headers=auth)
        assert response.status_code == 200
        seen[path] = response.text
    seen["/metrics"] = httpx.get(f"{gw.url}/metrics", timeout=10).text
    http.close()
    return ids


def test_no_tenant_key_or_hash_prefix_in_logs_metrics_spans_status_or_errors(
        receiver: OTLPReceiver, gateway_factory: Callable[..., Gateway], tmp_path: Any,
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    """Keys from a tenants file (stored as hashes): neither the key nor its hash, nor a prefix of
    the hash, reaches any output — through answers, 429 (rate and quota), 403 and 401 too."""
    from router.tenants import manage
    from router.tenants.keys import key_hash

    caplog.set_level(logging.DEBUG)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=receiver.traces_endpoint)))
    path = tmp_path / "tenants.yaml"
    path.write_text("tenants: {}\n")
    key = manage.create_key(path, "team", rpm=6, monthly_budget_usd=1.0).key
    narrow = manage.create_key(path, "narrow", rpm=100).key
    text = path.read_text().replace("narrow:\n", "narrow:\n    allowed_routes: [kimi]\n")
    path.write_text(text)
    gw = gateway_factory(tracer=Tracer(provider), settings={"tenants_file": path})
    access = io.StringIO()
    old_log = gw.services.access_log
    gw.services.access_log = gw.services.pipeline.accounting.access_log = AccessLog(access)
    old_log.close()

    seen: dict[str, str] = {}
    client = gw.client(api_key=key)
    messages: Any = [{"role": "user", "content": PROMPT}]
    client.chat.completions.create(model="auto", messages=messages)
    list(client.chat.completions.create(model="auto", messages=messages, stream=True))
    http = httpx.Client(base_url=gw.base_url, timeout=30)
    responses = {
        "forbidden route": http.post("/chat/completions", headers={"Authorization": f"Bearer {narrow}"},
                                     json={"model": "gpt:default", "messages": messages}),
        "wrong key": http.post("/chat/completions", headers={"Authorization": f"Bearer {key}x"},
                               json={"model": "auto", "messages": messages}),
        "me": http.get("/router/tenants/me", headers={"Authorization": f"Bearer {key}"}),
        "status": http.get("/router/status", headers={"Authorization": f"Bearer {key}"}),
    }
    for i in range(6):
        responses[f"rate {i}"] = http.post("/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                           json={"model": "auto", "messages": messages})
    assert responses["forbidden route"].status_code == 403 and responses["wrong key"].status_code == 401
    assert any(r.status_code == 429 for r in responses.values())
    for name, response in responses.items():
        seen[f"response: {name}"] = f"{response.status_code} {response.headers!r} {response.text}"
    seen["/metrics"] = httpx.get(f"{gw.url}/metrics", timeout=10).text
    http.close()
    gw.services.tracer.force_flush()
    gw.services.access_log.close()
    seen["access log"] = access.getvalue()
    seen["spans (OTLP wire bytes)"] = b"".join(receiver.raw_bodies).decode("utf-8", "replace")
    records = [r for r in caplog.records if not r.name.startswith(CLIENT_LOGGERS)]
    seen["python log records"] = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in records)
    seen["stdout"], seen["stderr"] = capfd.readouterr()

    assert '"tenant":"team"' in seen["access log"] and "router_tenant_requests_total" in seen["/metrics"]
    secrets: dict[str, str] = {}
    for label, value in (("key", key), ("narrow key", narrow)):
        digest = key_hash(value)
        secrets |= {label: value, f"{label} (tail)": value[-10:], f"{label} hash": digest,
                    f"{label} hash prefix": digest[:8], f"{label} hash tail": digest[-8:]}
    leaks = [f"{name} found in {where}" for where, output in seen.items()
             for name, value in secrets.items() if value in output]
    assert not leaks, "\n".join(leaks)
