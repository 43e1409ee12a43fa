"""The chart's tenants and Redis (issue 14): the tenants file from a Secret, the shared-state URL,
the optional single-node Redis (StatefulSet, persistence, password from a Secret, NetworkPolicy)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from router.settings import Settings
from tests.test_helm import CHART, FULLNAME, find, gateway_env, kinds, manifests, render

REDIS = f"{FULLNAME}-redis"
TENANTS = {"tenants": {"enabled": True, "existingSecret": "teams"}}
CHART_REDIS = {"redis": {"enabled": True, "auth": {"existingSecret": "redis-auth"}}}


def gateway_pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = find(docs, "Deployment", FULLNAME)["spec"]["template"]["spec"]
    return spec


def test_off_by_default_in_process_state_and_no_redis() -> None:
    docs = manifests({})
    env = gateway_env(docs)
    assert "ROUTER_TENANTS_FILE" not in env and "ROUTER_REDIS_URL" not in env
    assert env["ROUTER_REPLICAS"]["value"] == "2"  # the chart's default replicaCount: the gateway checks it
    assert "StatefulSet" not in kinds(docs)


def test_tenants_file_is_a_hot_reloaded_directory_mount_from_the_secret() -> None:
    docs = manifests(TENANTS)
    env = gateway_env(docs)
    assert env["ROUTER_TENANTS_FILE"]["value"] == "/etc/model-router/tenants/tenants.yaml"
    assert env["ROUTER_REDIS_FAILURE_BUDGETS"]["value"] == "closed"
    assert env["ROUTER_REDIS_FAILURE_RATE_LIMITS"]["value"] == "open"
    pod = gateway_pod(docs)
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "tenants")
    assert mount == {"name": "tenants", "mountPath": "/etc/model-router/tenants", "readOnly": True}  # no subPath
    volume = next(v for v in pod["volumes"] if v["name"] == "tenants")
    assert volume["secret"] == {"secretName": "teams", "items": [{"key": "tenants.yaml", "path": "tenants.yaml"}]}


def test_an_existing_redis_url_and_its_password_from_a_secret() -> None:
    docs = manifests({**TENANTS, "redis": {"url": "redis://cache.data:6379/2",
                                           "auth": {"existingSecret": "cache-auth", "secretKey": "pw"}}})
    env = gateway_env(docs)
    assert env["ROUTER_REDIS_URL"]["value"] == "redis://cache.data:6379/2"
    assert env["ROUTER_REDIS_PASSWORD"] == {"name": "ROUTER_REDIS_PASSWORD", "valueFrom": {
        "secretKeyRef": {"name": "cache-auth", "key": "pw"}}}
    assert "StatefulSet" not in kinds(docs)


def test_chart_redis_is_a_persistent_statefulset_with_auth_and_a_network_policy() -> None:
    docs = manifests({**TENANTS, **CHART_REDIS})
    assert gateway_env(docs)["ROUTER_REDIS_URL"]["value"] == f"redis://{REDIS}:6379/0"
    sts = find(docs, "StatefulSet", REDIS)
    assert sts["spec"]["replicas"] == 1
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert "--appendonly" in container["args"] and "$(REDIS_PASSWORD)" in container["args"]
    assert container["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "redis-auth", "key": "redis-password"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    service = find(docs, "Service", REDIS)
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "redis"
    policy = find(docs, "NetworkPolicy", REDIS)
    peer = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert peer["app.kubernetes.io/component"] == "gateway"  # only the gateway reaches Redis
    # Without persistence: an emptyDir, no claim.
    docs = manifests({**TENANTS, "redis": {**CHART_REDIS["redis"], "persistence": {"enabled": False}}})
    sts = find(docs, "StatefulSet", REDIS)
    assert "volumeClaimTemplates" not in sts["spec"]
    assert sts["spec"]["template"]["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}]


def test_replicas_reported_to_the_gateway_follow_autoscaling() -> None:
    env = gateway_env(manifests({"autoscaling": {"enabled": True, "maxReplicas": 7}}))
    assert env["ROUTER_REPLICAS"]["value"] == "7"
    env = gateway_env(manifests({"replicaCount": 1}))
    assert env["ROUTER_REPLICAS"]["value"] == "1"


@pytest.mark.parametrize(("values", "message"), [
    ({"tenants": {"enabled": True}}, "tenants.existingSecret"),
    ({"redis": {"enabled": True}}, "redis.auth.existingSecret"),
])
def test_incomplete_tenant_features_fail_with_the_fix(values: dict[str, Any], message: str) -> None:
    with pytest.raises(Exception, match=message):
        render(values)


def test_rendered_env_names_are_gateway_settings() -> None:
    """Every ROUTER_* variable the chart sets is a field of Settings (a typo would be ignored)."""
    env = gateway_env(manifests({**TENANTS, **CHART_REDIS}))
    fields = {f"ROUTER_{name.upper()}" for name in Settings.model_fields}
    assert {n for n in env if n.startswith("ROUTER_")} <= fields


def test_values_document_tenants_and_redis() -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert defaults["tenants"]["enabled"] is False and defaults["redis"]["enabled"] is False
    assert defaults["tenants"]["redisFailure"] == {"budgets": "closed", "rateLimits": "open"}
