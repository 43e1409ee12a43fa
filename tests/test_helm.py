"""The Helm chart (helm/model-router) and the Dockerfile, checked offline.

The chart is rendered and linted by the real Helm v4 engine (helm-python-sdk), and every rendered
manifest is validated by kubernetes-validate --strict against Kubernetes 1.30. The Dockerfile cannot
be built here (no Docker engine), so its structure is checked instead.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm  # the real Helm v4 engine; deliberately not skipped when missing
import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "helm" / "model-router"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
CASES = ["default", *(p.name for p in CI_VALUES)]
KUBE_VERSION = "1.30.0"
RELEASE, NAMESPACE = "rel", "ns"
FULLNAME = "rel-model-router"
SENSITIVE_ENV = re.compile(r"(_KEY|_TOKEN|_SECRET|_PASSWORD)$", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------- helpers

def load_values(case: str) -> dict[str, Any]:
    if case == "default":
        return {}
    return yaml.safe_load((CHART / "ci" / case).read_text()) or {}


def render(values: dict[str, Any] | None = None) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` would produce."""
    with helm.Chart.load(str(CHART)) as chart:
        return chart.render(values or {}, name=RELEASE, namespace=NAMESPACE)


def manifests(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path, text in sorted(render(values).items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    hits = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in hits]}"
    return hits[0]


def kinds(docs: list[dict[str, Any]]) -> set[str]:
    return {d["kind"] for d in docs}


def gateway_env(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    container = find(docs, "Deployment", FULLNAME)["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e for e in container["env"]}


def schema() -> dict[str, Any]:
    return json.loads((CHART / "values.schema.json").read_text())


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture(scope="module", params=CASES)
def case(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ---------------------------------------------------------------------------------------------- the engine

def test_every_optional_feature_is_off_by_default_and_has_a_ci_file() -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    toggles = {k for k, v in defaults.items() if isinstance(v, dict) and v.get("enabled") is False}
    assert toggles >= {"autoscaling", "serviceMonitor", "prometheusRule", "dashboards", "networkPolicy",
                       "ingress", "httpRoute", "kimi", "otel", "clientKeys"}
    turned_on = {k for p in CI_VALUES for k, v in load_values(p.name).items()
                 if isinstance(v, dict) and v.get("enabled") is True}
    assert toggles <= turned_on, f"no ci/*-values.yaml turns on: {sorted(toggles - turned_on)}"


def test_lint_is_clean_in_strict_mode(case: str) -> None:
    report = helm.lint(str(CHART), load_values(case), strict=True, kube_version=KUBE_VERSION)
    assert report["errors"] == []
    # Severity 1 is informational ("icon is recommended"); 2 (warning) and 3 (error) must not occur.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_every_manifest_validates_strictly_against_kubernetes_1_30(case: str, tmp_path: Path) -> None:
    docs = manifests(load_values(case))
    assert docs, "nothing rendered"
    files = []
    for i, doc in enumerate(docs):
        path = tmp_path / f"{i:02d}-{doc['kind']}-{doc['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(doc))
        files.append(str(path))
    tool = Path(sys.executable).with_name("kubernetes-validate")
    command = [str(tool) if tool.exists() else "kubernetes-validate", "--strict", "-k", KUBE_VERSION, *files]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    # Only the CRD kinds (no schema in kubernetes-validate) may be skipped with a warning.
    for line in result.stdout.splitlines():
        if line.startswith("WARN"):
            assert re.search(r"kind (ServiceMonitor|PrometheusRule|HTTPRoute) ", line), line


def test_a_client_dry_run_install_succeeds() -> None:
    with helm.Config(namespace=NAMESPACE, storage_driver="memory") as cfg:
        release = cfg.install(str(CHART), RELEASE, load_values("kimi-values.yaml"), dry_run="client")
    assert "kind: Deployment" in release["manifest"]


# ---------------------------------------------------------------------------------------------- values schema

@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ({"replicaCount": -1}, "negative replicas"),
        ({"replicaCount": "two"}, "replicas as a string"),
        ({"providers": {"openai": {"apiKey": "sk-live-123"}}}, "a plain-text key has no field"),
        ({"providers": {"apiKeys": {"openai": "sk-live-123"}}}, "no key map either"),
        ({"extraEnv": [{"name": "OPENAI_API_KEY", "value": "sk-live-123"}]}, "credential env as plain value"),
        ({"kimi": {"extraEnv": [{"name": "HF_TOKEN", "value": "hf_123"}]}}, "credential env as plain value"),
        ({"image": {"pullPolicy": "Sometimes"}}, "bad enum"),
        ({"config": {"demo": "maybe"}}, "demo is auto|true|false"),
        ({"kimi": {"enabled": "yes"}}, "boolean as a string"),
        ({"kimi": {"maxModelLen": 1_000_000}}, "beyond Kimi K2.5's 256K context"),
        ({"service": {"port": 70000}}, "port out of range"),
        ({"providers": {"kimi": {"apiBase": "http://kimi:8000"}}}, "Kimi URL must end in /v1"),
        ({"replicas": 3}, "unknown top-level key (typo of replicaCount)"),
    ],
)
def test_values_schema_rejects_bad_values(bad: dict[str, Any], why: str) -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    errors = list(jsonschema.Draft7Validator(schema()).iter_errors(deep_merge(defaults, bad)))
    assert errors, f"schema accepted {bad} ({why})"
    # And the real engine refuses to render them (Helm validates values against the schema).
    with pytest.raises(helm.HelmError):
        render(bad)


def test_values_schema_accepts_the_defaults_and_every_ci_file(case: str) -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator.check_schema(schema())
    jsonschema.validate(deep_merge(defaults, load_values(case)), schema())


def test_values_yaml_has_the_schema_modeline_and_every_property_is_described() -> None:
    first = (CHART / "values.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=values.schema.json"

    def undescribed(node: dict[str, Any], path: str) -> Iterator[str]:
        for key, sub in node.get("properties", {}).items():
            if "description" not in sub:
                yield f"{path}.{key}"
            yield from undescribed(sub, f"{path}.{key}")

    assert list(undescribed(schema(), "")) == []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"clientKeys": {"enabled": True}}, "clientKeys.existingSecret"),
        ({"otel": {"enabled": True}}, "otel.endpoint"),
        ({"httpRoute": {"enabled": True}}, "httpRoute.parentRefs"),
        ({"kimi": {"enabled": True, "replicas": 2}}, "kimi.modelCache.existingClaim"),
        ({"prometheusRule": {"enabled": True, "thresholds": {"eror_ratio": 0.1}}},
         "prometheusRule.thresholds.eror_ratio: no such threshold"),
    ],
)
def test_incomplete_features_fail_with_a_message_naming_the_fix(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=re.escape(message)):
        render(values)


# ---------------------------------------------------------------------------------------------- secrets

def test_no_secret_is_ever_rendered_and_credentials_come_from_secret_refs(case: str) -> None:
    docs = manifests(load_values(case))
    assert "Secret" not in kinds(docs), "the chart must never create a Secret: keys live in existing ones"
    for doc in docs:
        pod = doc["spec"] if doc["kind"] == "Pod" else doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            for env in container.get("env", []):
                if SENSITIVE_ENV.search(env["name"]):
                    assert "value" not in env, f"{doc['kind']}/{container['name']}: {env['name']} is plain"
                    assert "secretKeyRef" in env["valueFrom"], env


def test_provider_keys_are_optional_refs_into_the_existing_secret() -> None:
    env = gateway_env(manifests(load_values("providers-values.yaml")))
    for name in ("KIMI_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "model-router-providers", "key": name, "optional": True}
    assert env["ROUTER_DEMO"]["value"] == "false"
    assert env["ROUTER_CLIENT_KEYS_FILE"]["value"] == "/etc/model-router/client-keys/keys"
    assert env["KIMI_FLAVOUR"]["value"] == "moonshot"


def test_default_install_runs_in_demo_mode_without_any_key() -> None:
    env = gateway_env(manifests())
    assert env["ROUTER_DEMO"]["value"] == "true"
    assert not {"KIMI_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"} & env.keys()
    assert "DEMO MODE" in render()["model-router/templates/NOTES.txt"]


# ---------------------------------------------------------------------------------------------- gateway

def test_gateway_deployment_is_hardened_probed_and_spread() -> None:
    docs = manifests()
    deployment = find(docs, "Deployment", FULLNAME)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["serve", "--host", "0.0.0.0", "--port", "8080"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert "emptyDir" in tmp
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    assert {"Service", "ServiceAccount", "PodDisruptionBudget", "ConfigMap"} <= kinds(docs)


def test_policy_is_a_hot_reloaded_directory_mount_without_a_checksum_annotation(case: str) -> None:
    docs = manifests(load_values(case))
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        assert not [k for k in annotations if "checksum" in k], "a policy edit must not restart the pods"
    pod = find(docs, "Deployment", FULLNAME)["spec"]["template"]["spec"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "policy")
    assert "subPath" not in mount, "subPath mounts never see ConfigMap updates"
    env = gateway_env(docs)
    assert env["ROUTER_POLICY_FILE"]["value"] == f"{mount['mountPath']}/policy.yaml"
    assert env["ROUTER_POLICY_RELOAD_INTERVAL_S"]["value"] == "2"
    volume = next(v for v in pod["volumes"] if v["name"] == "policy")
    assert volume["configMap"]["name"] == f"{FULLNAME}-policy"


def test_policy_configmap_carries_the_packaged_policy_or_the_inline_override() -> None:
    packaged = find(manifests(), "ConfigMap", f"{FULLNAME}-policy")["data"]["policy.yaml"]
    assert packaged == (CHART / "files" / "policy.yaml").read_text().strip()
    inline = "version: test\nname: inline\n"
    overridden = find(manifests({"policy": inline}), "ConfigMap", f"{FULLNAME}-policy")["data"]["policy.yaml"]
    assert overridden == inline.strip()


def test_helm_test_pod_calls_readyz_through_the_service() -> None:
    pod = find(manifests(), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert f"http://{FULLNAME}:8080/readyz" in " ".join(pod["spec"]["containers"][0]["command"])


def test_gateway_selectors_match_neither_the_kimi_pool_nor_the_test_pod() -> None:
    docs = manifests(load_values("kimi-values.yaml"))
    selector = find(docs, "Deployment", FULLNAME)["spec"]["selector"]["matchLabels"]
    for labels in (find(docs, "Deployment", f"{FULLNAME}-kimi")["spec"]["template"]["metadata"]["labels"],
                   find(docs, "Pod")["metadata"]["labels"]):
        assert not selector.items() <= labels.items()
    assert find(docs, "Service", FULLNAME)["spec"]["selector"] == selector
    assert find(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector


def test_exposure_routes_only_the_api_so_metrics_stay_in_the_cluster() -> None:
    ingress = find(manifests(load_values("ingress-values.yaml")), "Ingress")
    paths = [p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert paths == ["/v1"]
    route = find(manifests(load_values("httproute-values.yaml")), "HTTPRoute")
    assert [m["path"]["value"] for r in route["spec"]["rules"] for m in r["matches"]] == ["/v1"]


def test_restricted_network_policy_still_admits_scrapers_and_the_test_pod() -> None:
    docs = manifests(load_values("networkpolicy-values.yaml"))
    rules = find(docs, "NetworkPolicy", FULLNAME)["spec"]["ingress"]
    peers = [peer for rule in rules for peer in rule["from"]]
    test_labels = find(docs, "Pod")["metadata"]["labels"]
    assert any("podSelector" in p and p["podSelector"]["matchLabels"].items() <= test_labels.items()
               for p in peers)
    namespaces = {p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                  for p in peers if "namespaceSelector" in p}
    assert namespaces == {"ingress-nginx", "monitoring"}


def test_autoscaling_replaces_the_fixed_replica_count() -> None:
    docs = manifests(load_values("autoscaling-values.yaml"))
    assert "replicas" not in find(docs, "Deployment", FULLNAME)["spec"]
    hpa = find(docs, "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)


def test_otel_exports_with_standard_variables() -> None:
    env = gateway_env(manifests(load_values("otel-values.yaml")))
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel-collector.observability:4318"
    assert env["OTEL_SERVICE_NAME"]["value"] == FULLNAME
    assert "deployment.environment=staging" in env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in gateway_env(manifests())


# ---------------------------------------------------------------------------------------------- Kimi pool

def test_kimi_pool_serves_k2_5_on_eight_gpus_with_the_kimi_parsers() -> None:
    docs = manifests(load_values("kimi-values.yaml"))
    pool = find(docs, "Deployment", f"{FULLNAME}-kimi")
    assert pool["spec"]["strategy"]["type"] == "Recreate"
    pod = pool["spec"]["template"]["spec"]
    vllm = pod["containers"][0]
    args = " ".join(vllm["args"])
    assert vllm["args"][0] == "moonshotai/Kimi-K2.5"
    for flag in ("--tensor-parallel-size=8", "--tool-call-parser=kimi_k2", "--reasoning-parser=kimi_k2",
                 "--enable-auto-tool-choice", "--trust-remote-code"):
        assert flag in args
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 8
    assert vllm["resources"]["requests"]["nvidia.com/gpu"] == 8
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    assert volumes["model-cache"]["persistentVolumeClaim"]["claimName"] == f"{FULLNAME}-kimi-cache"
    assert {m["mountPath"] for m in vllm["volumeMounts"]} == {"/models", "/dev/shm"}
    startup = vllm["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 3600, "weights take long to load"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    pvc = find(docs, "PersistentVolumeClaim")
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    service = find(docs, "Service", f"{FULLNAME}-kimi")
    assert service["spec"]["ports"][0]["port"] == 8000


def test_kimi_pool_is_wired_into_the_gateway_and_scraped() -> None:
    docs = manifests(load_values("kimi-values.yaml"))
    env = gateway_env(docs)
    assert env["KIMI_API_BASE"]["value"] == f"http://{FULLNAME}-kimi:8000/v1"
    assert env["KIMI_METRICS_URL"]["value"] == f"http://{FULLNAME}-kimi:8000/metrics"
    assert env["KIMI_MODEL"]["value"] == "moonshotai/Kimi-K2.5"
    assert env["KIMI_FLAVOUR"]["value"] == "vllm"
    assert env["ROUTER_DEMO"]["value"] == "false"
    assert env["KIMI_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "kimi-pool-key"
    pool = find(docs, "Deployment", f"{FULLNAME}-kimi")["spec"]["template"]["spec"]
    vllm_env = {e["name"]: e for e in pool["containers"][0]["env"]}
    assert vllm_env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "kimi-pool-key"
    monitor = find(docs, "ServiceMonitor")
    expression = monitor["spec"]["selector"]["matchExpressions"][0]
    assert expression["key"] == "app.kubernetes.io/component"
    assert set(expression["values"]) == {"gateway", "kimi"}
    kimi_service = find(docs, "Service", f"{FULLNAME}-kimi")
    assert kimi_service["metadata"]["labels"]["app.kubernetes.io/component"] == "kimi"
    assert monitor["spec"]["endpoints"][0]["port"] == kimi_service["spec"]["ports"][0]["name"]
    fence = find(docs, "NetworkPolicy", f"{FULLNAME}-kimi")
    peers = fence["spec"]["ingress"][0]["from"]
    assert peers[0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"


def test_kimi_pool_absent_by_default() -> None:
    docs = manifests()
    assert not [d for d in docs if d["metadata"]["name"].endswith("-kimi")]
    assert "KIMI_API_BASE" not in gateway_env(docs)


# ---------------------------------------------------------------------------------------------- observability

def test_prometheus_rule_spec_is_exactly_the_generated_rule_file() -> None:
    rule = find(manifests({"prometheusRule": {"enabled": True}}), "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())


def test_prometheus_rule_thresholds_override_only_their_recording_rule(tmp_path: Path) -> None:
    rule = find(manifests(load_values("prometheusrule-values.yaml")), "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    expected = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())
    overridden = 0
    for group in expected["groups"]:
        for item in group["rules"]:
            if item.get("record") == "router:alert_threshold:cost_usd_per_hour":
                item["expr"], overridden = "vector(200)", overridden + 1
    assert overridden == 1
    assert rule["spec"] == expected
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not on PATH (apt-get install prometheus); the spec was compared, not linted")
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump(rule["spec"]))
    result = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboards_configmap_carries_exactly_the_generated_dashboards() -> None:
    configmap = find(manifests(load_values("dashboards-values.yaml")), "ConfigMap", f"{FULLNAME}-dashboards")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"]["grafana_folder"] == "model-router"
    carried = sorted((CHART / "files" / "dashboards").glob("*.json"))
    assert carried, "the chart carries no dashboards"
    assert sorted(configmap["data"]) == [p.name for p in carried]
    for path in carried:
        assert configmap["data"][path.name] == path.read_text().strip()
        json.loads(configmap["data"][path.name])


def test_chart_files_do_not_drift_from_their_sources() -> None:
    result = subprocess.run([sys.executable, str(REPO / "helm" / "sync_files.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"chart files drifted:\n{result.stderr}"


def _sync_module() -> Any:
    spec = importlib.util.spec_from_file_location("sync_files", REPO / "helm" / "sync_files.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("sync_files", module)  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_sync_check_names_each_drifted_file_and_sync_repairs_it(tmp_path: Path) -> None:
    sync_files = _sync_module()
    repo, files = tmp_path, tmp_path / "helm" / "model-router" / "files"
    (repo / "policies").mkdir()
    (repo / "policies" / "default.yaml").write_text("name: default\n")
    (repo / "dashboards" / "alerts").mkdir(parents=True)
    (repo / "dashboards" / "alerts" / "model-router.rules.yaml").write_text("groups: []\n")
    (repo / "dashboards" / "generated").mkdir()
    (repo / "dashboards" / "generated" / "overview.json").write_text("{}\n")
    assert sync_files.sync(repo, files) and sync_files.drift(repo, files) == []

    (files / "policy.yaml").write_text("name: edited by hand\n")
    (files / "dashboards" / "old.json").write_text("{}\n")
    (repo / "dashboards" / "generated" / "overview.json").write_text('{"title": "new"}\n')
    problems = "\n".join(sync_files.drift(repo, files))
    for name in ("files/policy.yaml", "files/dashboards/overview.json", "files/dashboards/old.json"):
        assert name in problems
    sync_files.sync(repo, files)
    assert sync_files.drift(repo, files) == []


# ---------------------------------------------------------------------------------------------- Dockerfile

def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            out.append((instruction.upper(), " ".join(rest.split())))
    return out


def test_dockerfile_is_multi_stage_slim_locked_and_non_root() -> None:
    instructions = dockerfile_instructions()
    froms = [i for i, (op, _) in enumerate(instructions) if op == "FROM"]
    assert len(froms) >= 2, "builder and final stages"
    args = dict(a.split("=", 1) for op, a in instructions if op == "ARG" and "=" in a)
    final_stage = instructions[froms[-1]:]
    final_from = final_stage[0][1].split()[0]
    assert args.get(final_from.strip("${}"), final_from) == "python:3.11-slim"

    builder_runs = " ".join(a for op, a in instructions[: froms[-1]] if op == "RUN")
    assert "--require-hashes" in builder_runs and "-r requirements.lock" in builder_runs
    assert re.search(r"install --no-deps (--no-build-isolation )?\.", builder_runs)
    assert "-r requirements-build.lock" in builder_runs, "build tools come hash-pinned too"

    final_runs = " ".join(a for op, a in final_stage if op == "RUN")
    assert not re.search(r"apt-get|gcc|build-essential|pip install", final_runs), "no build tools"
    copies = [a for op, a in final_stage if op == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"], "the final image gets only the venv"

    users = [a for op, a in final_stage if op == "USER"]
    assert users and users[-1].split(":")[0] == "10001"
    env = " ".join(a for op, a in final_stage if op == "ENV")
    assert "LITELLM_LOCAL_MODEL_COST_MAP=True" in env
    assert ("EXPOSE", "8080") in final_stage
    entrypoint = [json.loads(a) for op, a in final_stage if op == "ENTRYPOINT"]
    cmd = [json.loads(a) for op, a in final_stage if op == "CMD"]
    assert entrypoint == [["model-router"]]
    assert cmd == [shlex.split("serve --host 0.0.0.0 --port 8080")]


def test_dockerignore_keeps_the_venv_and_git_out_of_the_build_context() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".env"} <= ignored


def test_the_gateway_drains_within_the_pods_grace_period() -> None:
    container = find(manifests(), "Deployment", FULLNAME)["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ROUTER_SHUTDOWN_GRACE_S"] == "110"  # 120 s grace - 5 s preStop - 5 s margin
