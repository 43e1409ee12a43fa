"""What one key may do: a tenant's limits narrowed by its key's, resolved from the tenants file."""

from __future__ import annotations

import hmac

import pytest

from router import errors
from router.policy.loader import load_policy_file
from router.settings import PACKAGED_POLICY
from router.tenants import keys as keys_module
from router.tenants.gate import tenant_policy
from router.tenants.keys import KeyIndex, bearer, key_hash, new_key
from router.tenants.limits import KeyLimits
from router.tenants.model import TenantsFile
from router.tenants.store import compile_directory

ENV = {"KIMI_API_BASE": "http://kimi.test/v1", "OPENAI_API_KEY": "x", "ANTHROPIC_API_KEY": "x"}


def directory(key: str) -> tuple[KeyLimits, KeyLimits]:
    parsed = TenantsFile.model_validate({"tenants": {"search": {
        "rpm": 100, "monthly_budget_usd": 50, "priority": "high",
        "max_cost_usd": {"default": 0.02, "max": 0.2}, "swarm": {"max_agents": 8, "max_concurrent": 4},
        "keys": [{"id": "key_00000000000000aa", "sha256": key_hash(key), "rpm": 10,
                  "allowed_modes": ["instant"]}]}}})
    d = compile_directory(parsed, [], from_file=True)
    found = d.identify(key)
    assert found is not None
    return found, d.tenant_limits("search")


def test_a_key_narrows_its_tenant_and_is_metered_on_both() -> None:
    key = new_key()
    limits, tenant = directory(key)
    assert limits.tenant == "search" and limits.priority == 0
    assert [(m.scope, m.rpm, m.monthly_usd) for m in limits.meters] == [("t", 100, 50.0),
                                                                       ("k:key_00000000000000aa", 10, None)]
    assert tenant.allowed_modes is None and limits.allowed_modes == frozenset({"instant"})
    with pytest.raises(errors.PermissionDenied):
        limits.check_request("auto:thinking", "thinking", None)
    limits.check_request("gpt:default", None, "gpt:default")  # vendor routes have no Kimi mode


def test_strictest_ceiling() -> None:
    limits, _ = directory(new_key())
    assert limits.request_limits(1.0, 60000, None, None).max_cost_usd == 0.02      # tenant default
    assert limits.request_limits(1.0, 60000, 0.5, None).max_cost_usd == 0.2       # tenant max
    assert limits.request_limits(1.0, 60000, 0.001, None).max_cost_usd == 0.001   # client stricter
    assert limits.request_limits(0.01, 60000, None, None).max_cost_usd == 0.01    # policy stricter
    asked = limits.request_limits(1.0, 60000, 0.5, 1000)  # the same ask again: the same (frozen) answer
    assert limits.request_limits(1.0, 60000, 0.5, 1000) is asked and asked.latency_budget_ms == 1000


def test_swarm_caps_make_one_cached_policy_copy() -> None:
    limits, _ = directory(new_key())
    loaded = load_policy_file(PACKAGED_POLICY, env=ENV)
    capped = tenant_policy(limits, loaded)
    assert capped.policy.swarm.max_agents == 8 and capped.policy.swarm.concurrency == 4
    assert tenant_policy(limits, loaded) is capped and loaded.policy.swarm.max_agents > 8


def test_keys_are_found_by_hash_and_confirmed_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    key = new_key()
    index = KeyIndex([(key_hash(key), "found")])
    compared: list[int] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(len(a))
        return real(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", spy)
    assert index.find(key) == "found" and compared == [32]  # the digests, never the key itself
    assert index.find(key + "x") is None
    assert bearer("Bearer  " + key) == key and bearer("Basic abc") is None and bearer(None) is None
    assert key.startswith("mr-") and len(key) == 46
