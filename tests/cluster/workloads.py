"""What a chart install left in a namespace: Deployments, their ReplicaSets and Pods, other objects."""

from __future__ import annotations

import time
from typing import Any

from stockpipe_dev.localservices.kube.tools import Kubectl

# Objects every namespace has, or that record history rather than state.
NAMESPACE_DEFAULTS = {("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")}
HISTORY_KINDS = {"Event"}


def owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    return any(ref["uid"] == owner["metadata"]["uid"] for ref in obj["metadata"].get("ownerReferences", []))


def pods_by_deployment(kubectl: Kubectl, namespace: str) -> dict[str, list[dict[str, Any]]]:
    """For each Deployment, the Pods of its current ReplicaSets (those the ReplicaSet controller created)."""
    deployments = kubectl.json("get", "deployments", "-n", namespace)["items"]
    replicasets = kubectl.json("get", "replicasets", "-n", namespace)["items"]
    pods = kubectl.json("get", "pods", "-n", namespace)["items"]
    result: dict[str, list[dict[str, Any]]] = {}
    for deployment in deployments:
        mine = [rs for rs in replicasets if owned_by(rs, deployment) and rs["spec"].get("replicas", 0) > 0]
        result[deployment["metadata"]["name"]] = [pod for pod in pods for rs in mine if owned_by(pod, rs)]
    return result


def wait_all_pods_created(kubectl: Kubectl, namespace: str, timeout_s: float = 90.0) -> dict[str, list[dict[str, Any]]]:
    """Wait until every Deployment's ReplicaSet has created all its Pods; fail with the ReplicaSets' conditions."""
    deadline = time.monotonic() + timeout_s
    while True:
        wanted = {
            d["metadata"]["name"]: d["spec"].get("replicas", 1)
            for d in kubectl.json("get", "deployments", "-n", namespace)["items"]
        }
        created = pods_by_deployment(kubectl, namespace)
        if wanted and all(len(created.get(name, [])) == replicas for name, replicas in wanted.items()):
            return created
        if time.monotonic() > deadline:
            conditions = [
                (rs["metadata"]["name"], rs.get("status", {}).get("conditions"))
                for rs in kubectl.json("get", "replicasets", "-n", namespace)["items"]
            ]
            raise AssertionError(f"pods not created: wanted {wanted}, ReplicaSet conditions {conditions}")
        time.sleep(0.5)


def namespaced_objects(kubectl: Kubectl, namespace: str) -> set[tuple[str, str]]:
    """(kind, name) of every object in the namespace, of every listable namespaced type."""
    types = kubectl.run("api-resources", "--verbs=list", "--namespaced", "-o", "name").stdout.split()
    items = kubectl.json("get", ",".join(types), "-n", namespace, "--ignore-not-found")
    objects = items.get("items", []) if items else []
    return {
        (obj["kind"], obj["metadata"]["name"])
        for obj in objects
        if obj["kind"] not in HISTORY_KINDS and (obj["kind"], obj["metadata"]["name"]) not in NAMESPACE_DEFAULTS
    }
