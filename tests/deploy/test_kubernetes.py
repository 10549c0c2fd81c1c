"""deploy/kubernetes validated as Kubernetes would: every rendered object against the
Kubernetes JSON schemas (kubernetes-validate, strict, offline), the ServiceMonitor CRD against
a local schema, and the properties operators rely on (non-root, read-only root, probes, one
beat, Redis durability, default-deny network, references that resolve, no secret values)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from .kustomize import WORKLOADS, containers, load_kustomization, pod_spec, render

BASE = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
# The oldest Kubernetes still commonly run, and the newest the package ships schemas for.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
SENSITIVE = ("KEY", "TOKEN", "PASSWORD", "SECRET", "REDIS_URL")

SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "namespace": {"type": "string"},
                           "labels": {"type": "object"}},
        },
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "required": ["matchLabels"],
                    "properties": {"matchLabels": {"type": "object",
                                                   "additionalProperties": {"type": "string"}}},
                },
                "namespaceSelector": {
                    "type": "object",
                    "properties": {"matchNames": {"type": "array", "items": {"type": "string"}},
                                   "any": {"type": "boolean"}},
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port"],
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                        },
                    },
                },
            },
        },
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render(BASE)


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any connection attempt fails the test: the schemas must come from the package."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access during validation: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


# --- schemas -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_validates_against_the_kubernetes_schemas(
    objects: list[dict[str, Any]], version: str, no_network: None
) -> None:
    checked = 0
    for doc in objects:
        if doc["kind"] == "ServiceMonitor":
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {exc.path}")
        checked += 1
    assert checked == len(objects) - 1


def test_the_validator_rejects_a_broken_manifest(objects: list[dict[str, Any]]) -> None:
    # Guard against a validator that accepts anything (e.g. a missing schema set).
    broken = dict(by_kind(objects, "Deployment")["rotator-beat"])
    broken["spec"] = {**broken["spec"], "replicas": "one", "strategi": {}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[0], strict=True)


def test_service_monitor_shape(objects: list[dict[str, Any]]) -> None:
    [monitor] = by_kind(objects, "ServiceMonitor").values()
    jsonschema.validate(monitor, SERVICE_MONITOR_SCHEMA)
    # It selects a Service in its namespace that has the named port.
    services = [
        s
        for s in by_kind(objects, "Service").values()
        if labels_match(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    assert services, "the ServiceMonitor selects no Service"
    ports = {p["name"] for s in services for p in s["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
    assert monitor["metadata"]["namespace"] in monitor["spec"]["namespaceSelector"]["matchNames"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**monitor, "spec": {"endpoints": []}}, SERVICE_MONITOR_SCHEMA)


# --- rendering -----------------------------------------------------------------------------


def test_kustomization_lists_every_manifest_once() -> None:
    listed = load_kustomization(BASE)["resources"]
    on_disk = sorted(p.name for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk and len(set(listed)) == len(listed)


def test_render_sets_namespace_labels_and_images(objects: list[dict[str, Any]]) -> None:
    for doc in objects:
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "rotator"
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "rotator"
    images = {c["image"] for doc in objects for c in containers(doc)}
    assert images == {
        "registry.example.com/rotator:0.1.0",
        "registry.example.com/rotator-api:0.1.0",
        "redis:7.4",
    }


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_renders_the_same_objects(objects: list[dict[str, Any]]) -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(BASE)], capture_output=True, text=True, timeout=60, check=True
    )
    rendered = [d for d in yaml.safe_load_all(result.stdout) if d]
    key = lambda d: (d["kind"], d["metadata"]["name"], d["metadata"].get("namespace"))  # noqa: E731
    assert sorted(map(key, rendered)) == sorted(map(key, objects))
    for doc in rendered:
        if doc["kind"] != "ServiceMonitor":
            kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)


# --- properties ----------------------------------------------------------------------------


def test_every_pod_is_non_root_with_a_read_only_root(objects: list[dict[str, Any]]) -> None:
    workloads = [o for o in objects if o["kind"] in WORKLOADS]
    assert {o["metadata"]["name"] for o in workloads} == {
        "rotator-worker", "rotator-beat", "rotator-api", "rotator-redis"
    }  # fmt: skip
    for doc in workloads:
        spec = pod_spec(doc)
        assert spec is not None
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0
        assert pod["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["automountServiceAccountToken"] is False
        for container in containers(doc):
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["capabilities"]["drop"] == ["ALL"]
            assert "limits" in container["resources"]


def test_every_container_has_probes(objects: list[dict[str, Any]]) -> None:
    for doc in objects:
        for container in containers(doc):
            assert "readinessProbe" in container, container["name"]
    api = by_kind(objects, "Deployment")["rotator-api"]
    [container] = containers(api)
    assert container["livenessProbe"]["httpGet"]["path"] == "/v1/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/readyz"


def test_exactly_one_beat_replaced_with_recreate(objects: list[dict[str, Any]]) -> None:
    beat = by_kind(objects, "Deployment")["rotator-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}


def test_redis_is_durable_and_never_evicts(objects: list[dict[str, Any]]) -> None:
    config = by_kind(objects, "ConfigMap")["rotator-redis-config"]["data"]["redis.conf"]
    lines = {line.strip() for line in config.splitlines()}
    assert {"appendonly yes", "appendfsync always", "maxmemory-policy noeviction"} <= lines
    redis = by_kind(objects, "StatefulSet")["rotator-redis"]
    assert redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    [container] = containers(redis)
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    assert "--requirepass" in container["command"]


def test_network_is_denied_by_default(objects: list[dict[str, Any]]) -> None:
    policies = by_kind(objects, "NetworkPolicy")
    deny = policies["default-deny-all"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    dns = policies["allow-dns-egress"]["spec"]["egress"][0]["ports"]
    assert {p["port"] for p in dns} == {53}
    https = policies["worker-to-providers"]["spec"]["egress"][0]
    assert https["ports"] == [{"protocol": "TCP", "port": 443}]
    assert "169.254.169.254/32" in https["to"][0]["ipBlock"]["except"]


def test_selectors_and_references_resolve(objects: list[dict[str, Any]]) -> None:
    workloads = [o for o in objects if o["kind"] in WORKLOADS]
    config_maps = set(by_kind(objects, "ConfigMap"))
    accounts = set(by_kind(objects, "ServiceAccount"))
    for doc in workloads:
        selector = doc["spec"]["selector"]["matchLabels"]
        assert labels_match(selector, doc["spec"]["template"]["metadata"]["labels"])
        spec = pod_spec(doc)
        assert spec is not None
        assert spec.get("serviceAccountName", "rotator") in accounts | {"default"}
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps
    for name, service in by_kind(objects, "Service").items():
        assert any(
            labels_match(service["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])
            for w in workloads
        ), f"Service {name} selects no pods"
    for name, budget in by_kind(objects, "PodDisruptionBudget").items():
        [target] = [
            w
            for w in workloads
            if labels_match(
                budget["spec"]["selector"]["matchLabels"],
                w["spec"]["template"]["metadata"]["labels"],
            )
        ]
        assert target["spec"]["replicas"] > budget["spec"]["minAvailable"], name


def test_no_secret_values_in_manifests(objects: list[dict[str, Any]]) -> None:
    assert not by_kind(objects, "Secret"), "Secrets are created out of band, never committed"
    referenced: set[str] = set()
    for doc in objects:
        for container in containers(doc):
            for env in container.get("env", []):
                if any(word in env["name"] for word in SENSITIVE):
                    assert "value" not in env, f"{env['name']} has an inline value"
                    referenced.add(env["valueFrom"]["secretKeyRef"]["name"])
    assert referenced == {"rotator-keys", "rotator-redis", "rotator-api-tokens"}


def test_targets_configmap_is_a_valid_targets_file(
    objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    from rotator.config import load_targets
    from rotator.providers import provider_names

    path = tmp_path / "rotator.yaml"
    path.write_text(by_kind(objects, "ConfigMap")["rotator-targets"]["data"]["rotator.yaml"])
    assert load_targets(path, provider_names()).targets
