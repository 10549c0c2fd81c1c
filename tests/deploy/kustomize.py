"""A small kustomize renderer for deploy/kubernetes: enough of kustomize for this base
(resources, namespace, labels, images), so `make test` validates what `kubectl apply -k`
would send without a kustomize binary. Where kubectl is installed, a test checks that its
rendering names the same objects."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

# Kinds without a namespace (kustomize leaves these alone).
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet"}


def load_kustomization(base: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((base / "kustomization.yaml").read_text())
    return data


def render(base: Path) -> list[dict[str, Any]]:
    kustomization = load_kustomization(base)
    known = {"apiVersion", "kind", "namespace", "labels", "images", "resources"}
    unknown = set(kustomization) - known
    assert not unknown, f"the test renderer does not implement {sorted(unknown)}"
    objects: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        path = base / resource
        assert path.is_file(), f"kustomization names a missing resource: {resource}"
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                objects.append(_transform(copy.deepcopy(doc), kustomization))
    return objects


def _transform(doc: dict[str, Any], kustomization: dict[str, Any]) -> dict[str, Any]:
    namespace = kustomization.get("namespace")
    if namespace and doc["kind"] not in CLUSTER_SCOPED:
        doc["metadata"]["namespace"] = namespace
    for entry in kustomization.get("labels", []):
        doc["metadata"].setdefault("labels", {}).update(entry["pairs"])
        if entry.get("includeSelectors") and doc["kind"] in WORKLOADS:
            doc["spec"]["selector"]["matchLabels"].update(entry["pairs"])
        if doc["kind"] in WORKLOADS and entry.get(
            "includeTemplates", entry.get("includeSelectors")
        ):
            doc["spec"]["template"]["metadata"]["labels"].update(entry["pairs"])
    images = {i["name"]: i for i in kustomization.get("images", [])}
    for container in containers(doc):
        override = images.get(container["image"].partition(":")[0])
        if override:
            name = override.get("newName", override["name"])
            container["image"] = f"{name}:{override['newTag']}" if "newTag" in override else name
    return doc


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc["kind"] in WORKLOADS:
        spec: dict[str, Any] = doc["spec"]["template"]["spec"]
        return spec
    return None


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(doc)
    if spec is None:
        return []
    return [*spec.get("initContainers", []), *spec["containers"]]
