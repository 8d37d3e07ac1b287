"""A Kubernetes control plane on loopback: etcd, kube-apiserver and kube-controller-manager.

The same set-up as controller-runtime's envtest, with the parts a chart needs to be proven: RBAC,
Pod Security Admission (on by default in the API server), service-account tokens, a CA the clients
verify, and a controller-manager so Deployments get ReplicaSets and Pods and garbage collection runs.
Everything lives under one directory (default `<state dir>/cluster`); `down` stops each process by
the pid in its record and removes the cluster's data (logs stay).
"""

from __future__ import annotations

import json
import secrets
import shutil
import ssl
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from stockpipe_dev.localservices.kube import pki
from stockpipe_dev.localservices.kube.build import CONTROL_PLANE, ensure_binaries
from stockpipe_dev.localservices.kube.layout import ADMIN_CONTEXT, ClusterInfo, Layout, default_root, write_kubeconfig
from stockpipe_dev.localservices.kube.node import GATEWAY, NODE_COMPONENTS, Node
from stockpipe_dev.localservices.process import (
    ProcessRecord,
    ServiceError,
    free_port,
    pid_alive,
    spawn,
    terminate,
    wait_until,
)

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service: first address of the range
ADMIN_USER = "stockpipe-admin"
# Users of the control-plane components: RBAC's bootstrap bindings already grant these names.
_COMPONENT_USERS = {
    "kube-controller-manager": ("system:kube-controller-manager", ""),
    "kube-scheduler": ("system:kube-scheduler", ""),
    "kube-proxy": ("system:kube-proxy", ""),
    # The node "localhost" (the Node authorizer and NodeRestriction know it by this name and group).
    "kubelet": ("system:node:localhost", "system:nodes"),
}
_START_TIMEOUT_S = 120.0


def _https_ok(url: str, context: ssl.SSLContext, token: str | None = None) -> bool:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback https
    with urllib.request.urlopen(request, timeout=3, context=context) as response:  # noqa: S310
        return bool(response.status == 200 and response.read().strip() == b"ok")


def _self_signed_context() -> ssl.SSLContext:
    # The controller-manager serves /healthz with a certificate it signs itself, on loopback.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class ControlPlane:
    """Start, check and stop the control plane of the cluster under `root`."""

    def __init__(self, root: Path | None = None, echo: Callable[[str], None] = print) -> None:
        self.layout = Layout(root or default_root())
        self.echo = echo

    # -- state -----------------------------------------------------------------------------------

    def running(self, component: str) -> ProcessRecord | None:
        path = self.layout.record(component)
        if not path.exists():
            return None
        record = ProcessRecord.load(path)
        return record if pid_alive(record.pid) else None

    def info(self) -> ClusterInfo | None:
        return ClusterInfo.load(self.layout) if self.layout.info.exists() else None

    def _spawn(self, component: str, argv: list[str], ports: dict[str, int], ready: Callable[[], bool]) -> None:
        log = self.layout.logs / f"{component}.log"
        pid = spawn(argv, log)
        ProcessRecord(component, pid, str(log), ports=ports).save(self.layout.record(component))
        wait_until(ready, _START_TIMEOUT_S, component, pid=pid, log=log)

    # -- up --------------------------------------------------------------------------------------

    def up(self, with_node: bool = False) -> ClusterInfo:
        """Build once, then start etcd, kube-apiserver and kube-controller-manager (and a node); wait until ready."""

        if any(self.running(name) for name in (*CONTROL_PLANE, *NODE_COMPONENTS)):
            raise ServiceError(f"a cluster is already running under {self.layout.root}: `stockpipe cluster down` first")
        binaries = ensure_binaries(CONTROL_PLANE, echo=self.echo)
        started = time.monotonic()
        self._clean()
        for folder in (self.layout.pki, self.layout.logs, self.layout.records):
            folder.mkdir(parents=True, exist_ok=True)
        self.layout.root.chmod(0o700)
        node = Node(self.layout, echo=self.echo) if with_node else None
        # With a node, the API server listens on the pods' bridge gateway: pods reach it there through
        # the `kubernetes` Service, and so does this machine (a loopback API server is out of pods' reach).
        bind_address = GATEWAY if node else "127.0.0.1"
        ports = {"etcd": free_port(), "etcd_peer": free_port(), "apiserver": free_port(), "controller_manager": 0}
        try:
            if node:
                node.make_bridge()
            info = self._make_credentials(bind_address, ports["apiserver"], ())
            self._start_etcd(binaries["etcd"], ports)
            self._start_apiserver(binaries["kube-apiserver"], ports, info, bind_address)
            ports["controller_manager"] = free_port()
            self._start_controller_manager(binaries["kube-controller-manager"], ports, info)
            info = ClusterInfo(info.server, info.ca_file, info.admin_token, info.kubeconfig, ports, with_node)
            info.save(self.layout)
            # The service-account controller creates `default` in every namespace: proof it works,
            # and pods in `default` can be created from here on.
            wait_until(
                lambda: bool(info.get("/api/v1/namespaces/default/serviceaccounts/default")),
                _START_TIMEOUT_S,
                "kube-controller-manager (default ServiceAccount)",
            )
            if node:
                node.up(info)
        except BaseException:
            self.down()
            raise
        self.echo(
            f"control plane up in {time.monotonic() - started:.1f}s: {info.server} (KUBECONFIG={info.kubeconfig})"
        )
        return info

    def _make_credentials(self, bind_address: str, port: int, extra_ips: tuple[str, ...]) -> ClusterInfo:
        pki_dir = self.layout.pki
        pki.make_ca(pki_dir)
        pki.make_service_account_key(pki_dir)
        ips = dict.fromkeys(["127.0.0.1", SERVICE_IP, bind_address, *extra_ips])
        pki.issue(
            pki_dir,
            "apiserver",
            "kube-apiserver",
            server_names=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                          "kubernetes.default.svc.cluster.local"],
            server_ips=list(ips),
        )  # fmt: skip
        # The API server's client certificate towards kubelets (logs, exec), in system:masters.
        pki.issue(pki_dir, "apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                  organization="system:masters", client=True)  # fmt: skip
        tokens = {ADMIN_USER: ("system:masters", secrets.token_urlsafe(32))}
        tokens.update({c: (group, secrets.token_urlsafe(32)) for c, (_user, group) in _COMPONENT_USERS.items()})
        rows = [f"{tokens[ADMIN_USER][1]},{ADMIN_USER},{ADMIN_USER},system:masters"]
        for component, (user, _group) in _COMPONENT_USERS.items():
            group = tokens[component][0]
            rows.append(f"{tokens[component][1]},{user},{user}" + (f",{group}" if group else ""))
        token_file = pki_dir / "tokens.csv"
        token_file.write_text("\n".join(rows) + "\n")
        token_file.chmod(0o600)
        server = f"https://{bind_address}:{port}"
        ca_file = pki_dir / f"{pki.CA}.crt"
        for component, (user, _group) in _COMPONENT_USERS.items():
            write_kubeconfig(self.layout.component_kubeconfig(component), server, ca_file, user, tokens[component][1])
        kubeconfig = write_kubeconfig(
            self.layout.kubeconfig, server, ca_file, ADMIN_USER, tokens[ADMIN_USER][1], context=ADMIN_CONTEXT
        )
        return ClusterInfo(server, str(ca_file), tokens[ADMIN_USER][1], str(kubeconfig), {})

    def _start_etcd(self, binary: Path, ports: dict[str, int]) -> None:
        client, peer = f"http://127.0.0.1:{ports['etcd']}", f"http://127.0.0.1:{ports['etcd_peer']}"
        argv = [
            str(binary),
            "--name=stockpipe",
            f"--data-dir={self.layout.root / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=stockpipe={peer}",
            # A throw-away local cluster: skipping fsync is what envtest does, and it halves start time.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

        def ready() -> bool:
            with urllib.request.urlopen(f"{client}/health", timeout=2) as response:  # noqa: S310 - loopback
                return bool(json.loads(response.read()).get("health") == "true")

        self._spawn("etcd", argv, {"client": ports["etcd"], "peer": ports["etcd_peer"]}, ready)

    def _start_apiserver(self, binary: Path, ports: dict[str, int], info: ClusterInfo, bind_address: str) -> None:
        pki_dir = self.layout.pki
        argv = [
            str(binary),
            f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
            f"--bind-address={bind_address}",
            f"--advertise-address={bind_address}",
            f"--secure-port={ports['apiserver']}",
            f"--tls-cert-file={pki_dir / 'apiserver.crt'}",
            f"--tls-private-key-file={pki_dir / 'apiserver.key'}",
            f"--client-ca-file={pki_dir / 'ca.crt'}",
            f"--token-auth-file={pki_dir / 'tokens.csv'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki_dir / 'sa.pub'}",
            f"--service-account-signing-key-file={pki_dir / 'sa.key'}",
            "--authorization-mode=Node,RBAC",
            # PodSecurity is on by default; NodeRestriction keeps a kubelet to its own node's objects.
            "--enable-admission-plugins=NodeRestriction",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=false",
            "--anonymous-auth=false",
            "--kubelet-preferred-address-types=Hostname,InternalIP",
            f"--kubelet-client-certificate={pki_dir / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki_dir / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki_dir / 'ca.crt'}",
            "--profiling=false",
            "--v=1",
        ]
        context = ssl.create_default_context(cafile=info.ca_file)
        self._spawn(
            "kube-apiserver",
            argv,
            {"secure": ports["apiserver"]},
            lambda: _https_ok(f"{info.server}/readyz", context, info.admin_token),
        )

    def _start_controller_manager(self, binary: Path, ports: dict[str, int], info: ClusterInfo) -> None:
        pki_dir = self.layout.pki
        kubeconfig = self.layout.component_kubeconfig("kube-controller-manager")
        argv = [
            str(binary),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--service-account-private-key-file={pki_dir / 'sa.key'}",
            f"--root-ca-file={pki_dir / 'ca.crt'}",
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports['controller_manager']}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--profiling=false",
            "--v=1",
        ]
        context = _self_signed_context()
        self._spawn(
            "kube-controller-manager",
            argv,
            {"secure": ports["controller_manager"]},
            lambda: _https_ok(f"https://127.0.0.1:{ports['controller_manager']}/healthz", context),
        )

    # -- down and status -------------------------------------------------------------------------

    def restart_apiserver(self) -> None:
        """kube-apiserver stopped and started again on its address and port (etcd keeps the state): what an
        upgrade or a crash of the API server does to its clients' connections and watches."""
        info = self.info()
        if info is None or not self.running("kube-apiserver"):
            raise ServiceError("no API server is running here")
        self.stop("kube-apiserver")
        binary = ensure_binaries(CONTROL_PLANE, echo=self.echo)["kube-apiserver"]
        bind_address = urlparse(info.server).hostname or "127.0.0.1"
        self._start_apiserver(binary, info.ports, info, bind_address)

    def stop(self, component: str) -> None:
        path = self.layout.record(component)
        if not path.exists():
            return
        record = ProcessRecord.load(path)
        if pid_alive(record.pid):
            terminate(record.pid, grace_s=30)  # a Kafka broker takes its time to close its logs
            self.echo(f"stopped {component} (pid {record.pid})")
        path.unlink()

    def down(self) -> None:
        """Stop every component (newest first) by its recorded pid, then remove the cluster's data.

        With a node: first drain it through the API server (so the kubelet tears each pod's network
        down), then stop the node's processes and remove its mounts, bridge and rules.
        """
        info = self.info()
        # First what sessions on this cluster left running beside it, recorded with its components (the
        # broker and MinIO of kube/deploy.py's ensure_node_services).
        if self.layout.records.exists():
            for record in sorted(self.layout.records.glob("*.json")):
                if record.stem not in (*CONTROL_PLANE, *NODE_COMPONENTS):
                    self.stop(record.stem)
        node = Node(self.layout, echo=self.echo)
        if node.dir.exists():
            if info is not None and self.running("kube-apiserver") and self.running("kubelet"):
                node.drain(info)
            node.stop(self.stop)
        for component in reversed(CONTROL_PLANE):
            self.stop(component)
        if node.dir.exists():
            node.restore_host()
        self._clean()

    def _clean(self) -> None:
        # Logs stay for a post-mortem; keys, tokens and etcd's data do not outlive the cluster.
        if self.layout.root.exists():
            for child in self.layout.root.iterdir():
                if child.name != "logs":
                    if child.is_dir():
                        shutil.rmtree(child)
                    else:
                        child.unlink()

    def status(self) -> dict[str, tuple[bool, str]]:
        """Each component's health, by asking it (not only by its pid)."""
        from stockpipe_dev.localservices.kube.node import NODE_COMPONENTS

        info = self.info()
        result: dict[str, tuple[bool, str]] = {}
        for component in (*CONTROL_PLANE, *(NODE_COMPONENTS if info and info.with_node else ())):
            record = self.running(component)
            if record is None or info is None:
                result[component] = (False, "not running")
                continue
            try:
                result[component] = (True, self._probe(component, record, info))
            except Exception as exc:  # reported, not raised: status shows every component
                result[component] = (False, f"pid {record.pid}, unhealthy: {exc}")
        return result

    def _probe(self, component: str, record: ProcessRecord, info: ClusterInfo) -> str:
        if component == "etcd":
            url = f"http://127.0.0.1:{record.ports['client']}/health"
            with urllib.request.urlopen(url, timeout=3) as response:
                if json.loads(response.read()).get("health") != "true":
                    raise ServiceError("etcd reports unhealthy")
            return f"pid {record.pid}, {url}"
        if component == "kube-apiserver":
            version = json.loads(info.get("/version"))["gitVersion"]
            if info.get("/readyz").strip() != b"ok":
                raise ServiceError("/readyz is not ok")
            return f"pid {record.pid}, {info.server}, {version}"
        if component == "kubelet":
            node = json.loads(info.get("/api/v1/nodes/localhost"))
            ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
            if not ready or ready[0]["status"] != "True":
                raise ServiceError(f"node not Ready: {ready[0]['message'] if ready else 'no condition'}")
            return f"pid {record.pid}, node localhost Ready"
        if "secure" not in record.ports:
            return f"pid {record.pid}, running"
        if not _https_ok(f"https://127.0.0.1:{record.ports['secure']}/healthz", _self_signed_context()):
            raise ServiceError("/healthz is not ok")
        return f"pid {record.pid}, healthz ok"
