"""Shared by the operator integration tests: constants, the emulated API server, the operator in a thread."""

from __future__ import annotations

import threading
from pathlib import Path

import kmock
import kopf
import yaml

from stockpipe.operator.main import run_operator
from stockpipe.operator.settings import OperatorSettings
from tests.integration.operator.kube_emulator import ApiServer
from tests.unit.operator import crd_schema

NAMESPACE = "stocks"
CONFIGMAP = "stockpipe-watchlist"
CM_PATH = f"/api/v1/namespaces/{NAMESPACE}/configmaps/{CONFIGMAP}"
TW_PATH = f"/apis/stockpipe.io/v1alpha1/namespaces/{NAMESPACE}/tickerwatchlists"
RESYNC_SECONDS = 1.0


def build_apiserver() -> ApiServer:
    crd = crd_schema.load_crd()
    schema = crd_schema.openapi_schema(crd)
    names = crd["spec"]["names"]
    server = ApiServer(
        validators={names["plural"]: lambda body: crd_schema.validation_errors(schema, body)},
        defaulters={names["plural"]: lambda body: crd_schema.apply_defaults(schema, body)},
        with_status={names["plural"]},
    )
    verbs = {"get", "list", "watch", "create", "patch", "delete"}
    server.resources[f"{crd['spec']['group']}/v1alpha1/{names['plural']}"] = kmock.ResourceInfo(
        kind=names["kind"],
        singular=names["singular"],
        namespaced=True,
        shortnames=set(names["shortNames"]),
        categories=set(names["categories"]),
        subresources={"status"},
        verbs=verbs,
    )
    server.resources["v1/configmaps"] = kmock.ResourceInfo(kind="ConfigMap", namespaced=True, verbs=verbs)
    server.resources["v1/events"] = kmock.ResourceInfo(kind="Event", namespaced=True, verbs=verbs)
    # kopf waits for namespaces to be discoverable even when it watches one named namespace.
    server.resources["v1/namespaces"] = kmock.ResourceInfo(kind="Namespace", namespaced=False, verbs=verbs)
    return server


class RunningOperator:
    """The real operator (the entry point behind `stockpipe operator`) in a thread, logged in to the emulator."""

    def __init__(self, settings: OperatorSettings, server: str) -> None:
        self.settings = settings
        self.connection = kopf.ConnectionInfo(server=server)
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="operator", daemon=True)

    def _run(self) -> None:
        try:
            run_operator(self.settings, connection=self.connection, stop_flag=self.stop, ready_flag=self.ready)
        except BaseException as exc:
            self.errors.append(exc)
            raise

    def start(self) -> RunningOperator:
        self.thread.start()
        if not self.ready.wait(30):
            raise AssertionError(f"the operator did not get ready: {self.errors!r}")
        return self

    def shutdown(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the operator did not stop within 30s"
        assert not self.errors, self.errors


def write_kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig for the emulator, for an operator that logs in as it does outside a cluster."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": server}}],
        "users": [{"name": "tester", "user": {"token": "test-token"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "tester", "namespace": NAMESPACE}}],
        "current-context": "kmock",
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path
