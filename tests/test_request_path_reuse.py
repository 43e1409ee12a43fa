"""Work done once per reload instead of once per request (issue 16), and the same answers as before.

The tenant gate on a gateway without keys (every request is the ``default`` tenant's): its limits
and its ``Tenant`` are built once; a key with nothing to count or budget is admitted without the
enforcer's arithmetic, with the same admission the enforcer grants. The relay's URL and header
lines per backend and key are built once, and a key that cannot be sent is still refused each time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

from router.auth import ClientAuth
from router.dispatch.relay import OpenAIRelay
from router.dispatch.upstream import UpstreamCall, UpstreamError
from router.engine.admission import AdmissionQueue
from router.engine.live import LiveState
from router.observability.metrics import RouterMetrics
from router.observability.tracing import Tracer
from router.pipeline.core import Pipeline
from router.policy.loader import load_policy_text
from router.tenants import manage
from router.tenants.enforce import Enforcer
from router.tenants.gate import TenantGate, worst_case_usd
from router.tenants.metrics import TenantMetrics
from router.tenants.state import MemoryState
from router.tenants.store import TenantStore
from tests.conftest import default_policy

ENV = {"KIMI_API_BASE": "http://kimi.test/v1", "OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"}


def _gate(store: TenantStore, loaded: Any) -> tuple[Pipeline, TenantGate]:
    class Fixed:
        current = loaded

    live = LiveState(loaded.policy)
    metrics = RouterMetrics()
    pipeline = Pipeline(policies=Fixed(), classifier=None, live=live, dispatcher=None,  # type: ignore[arg-type]
                        metrics=metrics, tracer=Tracer(None), access_log=None)  # type: ignore[arg-type]
    tenant_metrics = TenantMetrics(metrics, store.current.names)
    gate = TenantGate(ClientAuth([], directory=store), store, Enforcer(MemoryState(), tenant_metrics),
                      tenant_metrics, AdmissionQueue(max_depth=8, timeout_s=1.0), live)
    return pipeline, gate


def test_without_keys_the_default_tenant_is_built_once_and_reloads_build_it_again(tmp_path: Path) -> None:
    store = TenantStore(None)
    _, gate = _gate(store, load_policy_text(yaml.safe_dump(default_policy()), env=ENV))
    first, second = gate.resolve({}), gate.resolve({"content-type": "application/json"})
    assert first == "default" and first is second
    assert first.limits is second.limits and not first.limits.meters
    store.current = TenantStore(None).current  # what a reload does: a new directory
    third = gate.resolve({})
    assert third == "default" and third is not first and third.limits is not first.limits


def test_a_key_with_nothing_to_count_is_admitted_as_the_enforcer_admits_it(tmp_path: Path) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text(yaml.safe_dump({"tenants": {"free": {}, "local": {"self_hosted_spend": "exempt"}}}))
    keys = {name: manage.create_key(path, name).key for name in ("free", "local")}
    store = TenantStore(path)
    pipeline, gate = _gate(store, load_policy_text(yaml.safe_dump(default_policy()), env=ENV))
    for name, key in keys.items():
        tenant = gate.resolve({"authorization": f"Bearer {key}"})
        assert tenant == name and tenant is gate.resolve({"authorization": f"Bearer {key}"})
        body = {"model": "kimi:instant", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}
        routed = pipeline.prepare(body, {"x-router-task-type": "simple"}, tenant=tenant)
        limits, chosen, before = tenant.limits, routed.chosen, routed.decision.limits
        assert not limits.meters
        admitted = asyncio.run(gate.admit(routed, _unused, _unused)).admitted
        assert admitted is not None
        tokens = routed.facts.input_tokens + chosen.output_tokens + chosen.reasoning_tokens
        reference = asyncio.run(gate.enforcer.admit(limits, reserve_usd=worst_case_usd(routed.loaded.policy, routed),
                                                    need_usd=chosen.cost_usd, tokens=tokens, ttl_ms=60_000))
        got = admitted.reservation
        assert (got.granted_usd, got.tokens, got.counted, got.headers, got.limits) == \
            (reference.granted_usd, reference.tokens, reference.counted, reference.headers, reference.limits)
        assert admitted.cascade_usd == float("inf") and admitted.answer_reserved
        assert admitted.exempt_routes == (frozenset({"kimi:instant", "kimi:thinking", "kimi:agent", "swarm"})
                                          if name == "local" else frozenset())
        assert routed.chosen is chosen and routed.decision.limits is before  # the decision is left as it was
        admitted.finish(chosen.route, "ok", 0.001, 70)  # nothing to settle: no error, nothing counted
        assert not got.counted


def _unused(*_: Any) -> Any:
    raise AssertionError("a chosen route is never queued")


def test_the_relay_builds_a_backends_url_and_header_lines_once_and_refuses_a_broken_key() -> None:
    loaded = load_policy_text(yaml.safe_dump(default_policy()), env=ENV)
    backend = loaded.policy.backends["kimi"]
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    relay = OpenAIRelay()
    first = relay._target(UpstreamCall("kimi", backend, "sk-one", body))
    assert first is relay._target(UpstreamCall("kimi", backend, "sk-one", body))  # built once
    assert first[0] == "http://kimi.test/v1/chat/completions"
    assert first[1] == b"content-type: application/json\r\nauthorization: Bearer sk-one\r\n"
    assert relay._target(UpstreamCall("kimi", backend, "sk-two", body))[1].endswith(b"Bearer sk-two\r\n")

    async def call(key: str) -> UpstreamError:
        try:
            await relay.complete(UpstreamCall("kimi", backend, key, body))
        except UpstreamError as exc:
            return exc
        raise AssertionError("a key with a line break was sent")

    for _ in range(2):  # never cached, never sent: the same connection error each time (no stack trace, no 500)
        exc = asyncio.run(call("sk-bad\r\nx-injected: 1"))
        assert exc.kind == "connection" and "ProtocolError" in exc.message
    asyncio.run(relay.aclose())
