"""Traefik as the local cluster's ingress controller: its image, its RBAC, an IngressClass, one Deployment.

What a user's cluster gets from Traefik's chart (the README's step 2), reduced to what this node needs:
the Kubernetes Ingress provider only (no CRDs), watching Ingresses of the class `traefik`, as a pod on the
host's network listening on WEB_PORT (Traefik's own web entry point; its chart maps 80 to it), so a browser
on this machine reaches `http://<host>:WEB_PORT/` with the hosts mapped to 127.0.0.1 (Chromium's
`--host-resolver-rules`, no /etc/hosts edit). The host's network is what Pod Security's baseline refuses,
so its namespace is `privileged` and holds nothing else; the container itself is as restricted as the
chart's (non-root, read-only root, no capabilities).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from stockpipe_dev.localservices.docker import DockerEngine
from stockpipe_dev.localservices.kube.addons import TRAEFIK_IMAGE, TRAEFIK_UID, ensure_traefik_image
from stockpipe_dev.localservices.kube.controlplane import ControlPlane
from stockpipe_dev.localservices.kube.kindload import load_images
from stockpipe_dev.localservices.kube.tools import CommandError, Kubectl
from stockpipe_dev.localservices.process import ServiceError

NAMESPACE = "traefik"
INGRESS_CLASS = "traefik"
CONTROLLER = "traefik.io/ingress-controller"
WEB_PORT = 8000
PING_PORT = 8082  # the probes' entry point, on loopback, apart from the routed one


def manifests() -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/name": "traefik", "app.kubernetes.io/instance": "traefik-local"}
    meta = {"name": "traefik", "namespace": NAMESPACE, "labels": labels}
    args = [
        "--providers.kubernetesingress=true",
        f"--providers.kubernetesingress.ingressclass={INGRESS_CLASS}",
        f"--entryPoints.web.address=:{WEB_PORT}",
        f"--entryPoints.traefik.address=127.0.0.1:{PING_PORT}",
        "--ping=true",
        "--ping.entryPoint=traefik",
        "--log.level=INFO",
        "--accesslog=true",
    ]
    probe = {"httpGet": {"path": "/ping", "port": PING_PORT, "host": "127.0.0.1"}, "periodSeconds": 5}
    container = {
        "name": "traefik",
        "image": TRAEFIK_IMAGE,
        "imagePullPolicy": "Never",
        "args": args,
        "readinessProbe": probe,
        "livenessProbe": {**probe, "initialDelaySeconds": 10},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": TRAEFIK_UID,
            "runAsGroup": TRAEFIK_UID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": {"pod-security.kubernetes.io/enforce": "privileged"}},
        },
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "traefik-local", "labels": labels},
            # The Ingress provider's reads (Traefik's chart grants the same for it), and the Ingress status.
            "rules": [
                {"apiGroups": [""], "resources": ["services", "secrets", "nodes"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
                {
                    "apiGroups": ["networking.k8s.io", "extensions"],
                    "resources": ["ingresses", "ingressclasses"],
                    "verbs": ["get", "list", "watch"],
                },
                {
                    "apiGroups": ["networking.k8s.io", "extensions"],
                    "resources": ["ingresses/status"],
                    "verbs": ["update"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "traefik-local", "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "traefik-local"},
            "subjects": [{"kind": "ServiceAccount", "name": "traefik", "namespace": NAMESPACE}],
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": INGRESS_CLASS, "labels": labels},
            "spec": {"controller": CONTROLLER},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},  # one pod holds the host's port
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "traefik",
                        "hostNetwork": True,
                        "dnsPolicy": "ClusterFirstWithHostNet",
                        "containers": [container],
                    },
                },
            },
        },
    ]


def install_ingress_controller(plane: ControlPlane, engine: DockerEngine, echo: Callable[[str], None] = print) -> None:
    """Traefik's image into the node, its objects applied, its pod Ready (ServiceError otherwise)."""
    info = plane.info()
    if info is None or not plane.running("kubelet"):
        raise ServiceError("no node runs: `stockpipe cluster up --with-node` first")
    load_images(plane.layout, engine, [ensure_traefik_image(engine, echo)])
    kubectl = Kubectl(Path(info.kubeconfig))
    for manifest in manifests():
        kubectl.apply(manifest)
    try:
        kubectl.run("rollout", "status", "deployment/traefik", "-n", NAMESPACE, "--timeout=180s", timeout_s=200)
    except CommandError as exc:
        raise ServiceError(f"Traefik did not turn Ready: {exc}") from exc
    echo(f"ingress controller: Traefik ({TRAEFIK_IMAGE}), IngressClass {INGRESS_CLASS}, http://<host>:{WEB_PORT}/")
