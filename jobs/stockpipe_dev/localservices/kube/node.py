# size: one node is one ordered bring-up (containerd, CNI, kubelet, proxy, DNS) and its teardown.
"""One real node beside the local control plane: containerd, CNI bridge, kubelet, kube-scheduler, kube-proxy.

Everything is the node's own: containerd runs with its own config, root, state and socket (never the
system's or Docker's); pods live on a bridge `spbr0` (10.244.0.0/24, the host is 10.244.0.1) made
with Debian's CNI plugins; the API server listens on the bridge's gateway address so pods reach it
through the `kubernetes` Service. `down` drains the node through the API (so the kubelet tears every
sandbox's network down), stops each process by its recorded pid, unmounts what is left under the
node's folder, deletes the bridge, undoes kube-proxy's rules and restores the sysctls the kubelet and
kube-proxy changed.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stockpipe_dev.localservices.kube import pki
from stockpipe_dev.localservices.kube.build import NODE, ensure_binaries
from stockpipe_dev.localservices.kube.layout import ClusterInfo, Layout
from stockpipe_dev.localservices.process import (
    ProcessRecord,
    ServiceError,
    free_port,
    pid_alive,
    spawn,
    wait_until,
)
from stockpipe_dev.localservices.toolchain import require

BRIDGE = "spbr0"
POD_CIDR = "10.244.0.0/24"
GATEWAY = "10.244.0.1"
NODE_NAME = "localhost"
PAUSE_IMAGE = "stockpipe.local/pause:3.10"
CNI_BIN_DIR = "/usr/lib/cni"
# How soon a ConfigMap edit reaches a mounted volume: the kubelet watches ConfigMaps it mounts and
# re-syncs a running pod's volumes every syncFrequency (kubelet default: 1 min).
KUBELET_SYNC_FREQUENCY = "10s"
# The kubelet (protectKernelDefaults off) and kube-proxy set these; `down` puts the old values back.
SYSCTLS = (
    "vm/overcommit_memory",
    "kernel/panic",
    "kernel/panic_on_oops",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/ipv4/ip_forward",
)
NODE_COMPONENTS = ("containerd", "kube-scheduler", "cluster-dns", "kube-proxy", "kubelet")
CLUSTER_DOMAIN = "cluster.local"
# CoreDNS on the gateway (the kubelet's clusterDNS), as a cluster's kube-dns Service would answer: the
# kubernetes plugin (Services, headless Services with per-pod records, pod records for running pods) from
# the API server. Nothing upstream is reachable here, so no `forward`: other names get no answer.
_COREFILE = """.:53 {{
    bind {address}
    errors
    health 127.0.0.1:{health}
    ready 127.0.0.1:{ready}
    kubernetes {domain} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} {context}
        pods verified
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
    loadbalance
}}
"""


def missing_for_node(*tools: str) -> list[str]:
    """What this machine lacks to run the node (and `tools`, e.g. dockerd for images): empty when it can."""
    needed = ("containerd", "ctr", "runc", "iptables", "ip", *tools)
    missing = [tool for tool in needed if not shutil.which(tool)]
    missing += [] if (Path(CNI_BIN_DIR) / "bridge").exists() else ["containernetworking-plugins"]
    return missing + ([] if os.geteuid() == 0 else ["root"])


def _run(*argv: str, check: bool = True) -> str:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise ServiceError(f"{' '.join(argv)}: {result.stderr.strip()}")
    return result.stdout


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name


class Node:
    """Start and stop the node of the cluster under `layout.root`."""

    def __init__(self, layout: Layout, echo: Callable[[str], None] = print) -> None:
        self.layout = layout
        self.echo = echo
        self.dir = layout.root / "node"

    @property
    def run_dir(self) -> Path:
        """containerd's sockets and the kubelet's folder (its sockets too): a short path, as a unix socket's
        path has at most 104 bytes."""
        return run_dir(self.layout.root)

    @property
    def socket(self) -> Path:
        return self.run_dir / "containerd.sock"

    # -- host networking ---------------------------------------------------------------------

    def make_bridge(self) -> None:
        """The pods' bridge, made before the API server so it can listen on the gateway address."""
        require("ip", "apt-get install iproute2")
        if _run("ip", "-o", "link", "show", BRIDGE, check=False).strip():
            raise ServiceError(f"a bridge {BRIDGE} exists already: another local cluster runs, or one was not stopped")
        self.dir.mkdir(parents=True, exist_ok=True)
        saved = {name: _sysctl_path(name).read_text().strip() for name in SYSCTLS if _sysctl_path(name).exists()}
        (self.dir / "sysctls.json").write_text(json.dumps(saved))
        (self.dir / "iptables-chains.json").write_text(json.dumps(sorted(_chains())))
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        _sysctl_path("net/ipv4/ip_forward").write_text("1")

    # -- up ------------------------------------------------------------------------------------

    def up(self, info: ClusterInfo) -> None:
        binaries = ensure_binaries(NODE, echo=self.echo)
        for folder in ("containerd", "cni/net.d", "cni/ipam", "kubelet", "pod-logs"):
            (self.dir / folder).mkdir(parents=True, exist_ok=True)
        self._node_credentials()
        self._start_containerd()
        self._import_pause(binaries["pause"])
        self._write_cni()
        self._start_scheduler(binaries["kube-scheduler"])
        self._start_dns()
        # kube-proxy waits for its Node object, which the kubelet registers.
        self._start_kubelet(binaries["kubelet"], info)
        self._start_kube_proxy(binaries["kube-proxy"])
        wait_until(lambda: self._ready(info), 180, "the node (Ready)", log=self.layout.logs / "kubelet.log")

    def _node_credentials(self) -> None:
        # The kubelet's serving certificate: the API server reaches it as "localhost" (logs, exec).
        pki.issue(self.layout.pki, "kubelet", f"system:node:{NODE_NAME}", organization="system:nodes",
                  server_names=[NODE_NAME], server_ips=["127.0.0.1", GATEWAY])  # fmt: skip

    def _record(self, component: str, argv: list[str], ports: dict[str, int], ready: Callable[[], bool]) -> None:
        log = self.layout.logs / f"{component}.log"
        pid = spawn(argv, log)
        ProcessRecord(component, pid, str(log), ports=ports).save(self.layout.record(component))
        wait_until(ready, 120, component, pid=pid, log=log)

    def _start_containerd(self) -> None:
        base = self.dir / "containerd"
        config = f"""version = 2
root = "{base / "root"}"
state = "{base / "state"}"
oom_score = 0
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.run_dir / "containerd.sock.ttrpc"}"
[debug]
  address = "{self.run_dir / "debug.sock"}"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # Root here may not lower oom_score_adj; without this runc fails ("can't get final child's PID").
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{self.dir / "cni" / "net.d"}"
"""
        (base / "config.toml").write_text(config)
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        containerd = require("containerd", "apt-get install containerd (Debian's, it comes with docker.io)")
        self._record(
            "containerd",
            [containerd, "--config", str(base / "config.toml"), "--log-level", "warn"],
            {},
            lambda: bool(self._ctr("version")),
        )

    def _ctr(self, *args: str, stdin: bytes | None = None) -> str:
        ctr = require("ctr", "apt-get install containerd")
        result = subprocess.run(
            [ctr, "--address", str(self.socket), "--namespace", "k8s.io", *args],
            input=stdin,
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise ServiceError(f"ctr {' '.join(args)}: {result.stderr.decode(errors='replace').strip()}")
        return result.stdout.decode(errors="replace")

    def import_image_archive(self, archive: bytes) -> None:
        """An image archive (`docker save` or OCI layout tar) into the node's containerd."""
        self._ctr("images", "import", "--no-unpack", "-", stdin=archive)

    def import_image_file(self, archive: Path) -> None:
        """An image archive on disk (`docker save`), unpacked at import so pods start without unpacking."""
        self._ctr("images", "import", str(archive))

    def _import_pause(self, binary: Path) -> None:
        self.import_image_archive(pause_image_archive(binary))

    def _write_cni(self) -> None:
        conflist = {
            "cniVersion": "1.0.0",
            "name": "stockpipe",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR, "gateway": GATEWAY}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.dir / "cni" / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
                # The host's FORWARD policy may be DROP (Docker sets it): allow the pods' traffic.
                {"type": "firewall"},
            ],
        }
        (self.dir / "cni" / "net.d" / "10-stockpipe.conflist").write_text(json.dumps(conflist, indent=2))

    def _start_scheduler(self, binary: Path) -> None:
        kubeconfig = self.layout.component_kubeconfig("kube-scheduler")
        port = free_port()
        argv = [str(binary), f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}", "--leader-elect=false", "--bind-address=127.0.0.1",
                f"--secure-port={port}", "--v=1"]  # fmt: skip
        self._record("kube-scheduler", argv, {"secure": port}, lambda: _healthz(port))

    def _start_dns(self) -> None:
        """CoreDNS (built once from the Go proxy) answering the cluster's names on the gateway."""
        from stockpipe_dev.localservices.kube.layout import ADMIN_CONTEXT
        from stockpipe_dev.localservices.toolchain import coredns_path

        binary = coredns_path()
        health, ready = free_port(), free_port()
        corefile = self.dir / "Corefile"
        corefile.write_text(_COREFILE.format(address=GATEWAY, health=health, ready=ready, domain=CLUSTER_DOMAIN,
                                             kubeconfig=self.layout.kubeconfig, context=ADMIN_CONTEXT))  # fmt: skip
        self._record(
            "cluster-dns",
            [str(binary), "-conf", str(corefile)],
            {"dns": 53, "health": health},
            lambda: (
                _http_ok(f"http://127.0.0.1:{ready}/ready") and _resolves(f"kubernetes.default.svc.{CLUSTER_DOMAIN}.")
            ),
        )

    def _start_kube_proxy(self, binary: Path) -> None:
        health, metrics = free_port(), free_port()
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.layout.component_kubeconfig("kube-proxy"))},
            "mode": "iptables",
            "clusterCIDR": POD_CIDR,
            "hostnameOverride": NODE_NAME,
            "healthzBindAddress": f"127.0.0.1:{health}",
            "metricsBindAddress": f"127.0.0.1:{metrics}",
            # Leave the host's conntrack table size alone.
            "conntrack": {"maxPerCore": 0},
            # NodePorts only on the bridge's gateway, never on the machine's external address or loopback.
            "nodePortAddresses": [f"{GATEWAY}/32"],
            "iptables": {"localhostNodePorts": False},
        }
        path = self.dir / "kube-proxy.json"
        path.write_text(json.dumps(config, indent=2))
        self._record(
            "kube-proxy",
            [str(binary), f"--config={path}", "--v=1"],
            {"healthz": health},
            lambda: _http_ok(f"http://127.0.0.1:{health}/healthz"),
        )

    def _start_kubelet(self, binary: Path, info: ClusterInfo) -> None:
        health, port = free_port(), free_port()
        pki_dir = self.layout.pki
        config: dict[str, Any] = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": "127.0.0.1",
            "port": port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": health,
            "tlsCertFile": str(pki_dir / "kubelet.crt"),
            "tlsPrivateKeyFile": str(pki_dir / "kubelet.key"),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki_dir / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": False,
            "cgroupsPerQOS": False,
            "enforceNodeAllocatable": [],
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "podLogsDir": str(self.dir / "pod-logs"),
            "resolvConf": "",
            # Pods resolve the cluster's names through the node's CoreDNS on the gateway.
            "clusterDNS": [GATEWAY],
            "clusterDomain": CLUSTER_DOMAIN,
            "syncFrequency": KUBELET_SYNC_FREQUENCY,
            "configMapAndSecretChangeDetectionStrategy": "Watch",
            "serializeImagePulls": False,
            "imageGCHighThresholdPercent": 100,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "podCIDR": POD_CIDR,
            "maxPods": 50,
        }
        path = self.dir / "kubelet.json"
        path.write_text(json.dumps(config, indent=2))
        argv = [str(binary), f"--config={path}", f"--kubeconfig={self.layout.component_kubeconfig('kubelet')}",
                f"--root-dir={self.run_dir / 'kubelet'}", f"--hostname-override={NODE_NAME}", f"--node-ip={GATEWAY}",
                "--v=1"]  # fmt: skip
        self._record("kubelet", argv, {"port": port, "healthz": health},
                     lambda: _http_ok(f"http://127.0.0.1:{health}/healthz"))  # fmt: skip

    def _ready(self, info: ClusterInfo) -> bool:
        node = json.loads(info.get(f"/api/v1/nodes/{NODE_NAME}"))
        return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])

    # -- down ----------------------------------------------------------------------------------

    def drain(self, info: ClusterInfo, timeout_s: float = 60.0) -> None:
        """Cordon the node and delete every pod through the API, so the kubelet stops each sandbox (CNI DEL)."""
        with contextlib.suppress(OSError):
            info.request("PATCH", f"/api/v1/nodes/{NODE_NAME}", {"spec": {"unschedulable": True}},
                         "application/merge-patch+json")  # fmt: skip
            for namespace in json.loads(info.get("/api/v1/namespaces"))["items"]:
                name = namespace["metadata"]["name"]
                info.request("DELETE", f"/api/v1/namespaces/{name}/pods?gracePeriodSeconds=2")
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and (self._pods_on_node(info) or _bridge_ports()):
                time.sleep(0.5)

    def _pods_on_node(self, info: ClusterInfo) -> int:
        pods = json.loads(info.get(f"/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE_NAME}"))["items"]
        return len(pods)

    def _sandboxes_ready(self) -> bool:
        try:
            return bool(self._ctr("tasks", "ls", "-q").split())
        except ServiceError:
            return False

    def stop(self, stop_component: Callable[[str], None]) -> None:
        for component in ("kubelet", "kube-proxy", "cluster-dns", "kube-scheduler"):
            stop_component(component)
        # Tasks the drain did not reach: kill them through containerd before it stops.
        with contextlib.suppress(ServiceError):
            for task in self._ctr("tasks", "ls", "-q").split():
                with contextlib.suppress(ServiceError):
                    self._ctr("tasks", "kill", "-s", "SIGKILL", task)
        stop_component("containerd")
        self._kill_shims()
        self._unmount()

    def restore_host(self) -> None:
        """The bridge, kube-proxy's rules and the sysctls, as they were before `up`."""
        self._cleanup_network()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def _kill_shims(self) -> None:
        """containerd's shims outlive it by design; ours are those started with our socket's address."""
        address = str(self.socket)
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"containerd-shim" in argv[0] and address.encode() in argv:
                pid = int(proc.name)
                if pid_alive(pid):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)

    def _unmount(self) -> None:
        mine = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                if line.split()[1].startswith((str(self.layout.root), str(self.run_dir)))]  # fmt: skip
        for target in sorted(mine, key=len, reverse=True):
            _run("umount", "-l", target, check=False)

    def _cleanup_network(self) -> None:
        if _run("ip", "-o", "link", "show", BRIDGE, check=False).strip():
            _run("ip", "link", "delete", BRIDGE, check=False)
        binary = ensure_binaries(["kube-proxy"])["kube-proxy"]
        _run(str(binary), "--cleanup", check=False)
        # The kubelet's and the CNI firewall plugin's own chains, where `up` made them.
        before_path = self.dir / "iptables-chains.json"
        before = set(json.loads(before_path.read_text())) if before_path.exists() else set()
        for table, chain, jumps in _NODE_CHAINS:
            if (table, chain) in before:
                continue
            for rule in jumps:
                for _ in range(10):  # a jump added twice is deleted twice
                    if not _rule_exists(table, rule):
                        break
                    _run("iptables", "-t", table, "-D", *rule, check=False)
            _run("iptables", "-t", table, "-F", chain, check=False)
            _run("iptables", "-t", table, "-X", chain, check=False)
        saved_path = self.dir / "sysctls.json"
        if saved_path.exists():
            for name, value in json.loads(saved_path.read_text()).items():
                with contextlib.suppress(OSError):
                    _sysctl_path(name).write_text(value)


_NODE_CHAINS: tuple[tuple[str, str, list[list[str]]], ...] = (
    ("filter", "KUBE-FIREWALL", [["INPUT", "-j", "KUBE-FIREWALL"], ["OUTPUT", "-j", "KUBE-FIREWALL"]]),
    (
        "filter",
        "CNI-FORWARD",
        [["FORWARD", "-m", "comment", "--comment", "CNI firewall plugin rules", "-j", "CNI-FORWARD"]],
    ),
    ("filter", "CNI-ADMIN", []),
    ("filter", "KUBE-KUBELET-CANARY", []),
    ("nat", "KUBE-KUBELET-CANARY", []),
    ("mangle", "KUBE-KUBELET-CANARY", []),
    ("mangle", "KUBE-IPTABLES-HINT", []),
)


def run_dir(root: Path) -> Path:
    return Path("/run") / f"stockpipe-node-{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]}"


def _chains() -> set[tuple[str, str]]:
    found = set()
    for table in ("filter", "nat", "mangle"):
        for line in _run("iptables", "-t", table, "-S", check=False).splitlines():
            if line.startswith("-N "):
                found.add((table, line.split()[1]))
    return found


def _rule_exists(table: str, rule: list[str]) -> bool:
    return subprocess.run(["iptables", "-t", table, "-C", *rule], capture_output=True, check=False).returncode == 0


def _bridge_ports() -> list[str]:
    return _run("ip", "-o", "link", "show", "master", BRIDGE, check=False).splitlines()


def leftovers(root: Path) -> list[str]:
    """What a stopped node would have left: mounts under its folder, its bridge, veths on it, its shims."""
    found = [f"mount {line.split()[1]}" for line in Path("/proc/mounts").read_text().splitlines()
             if line.split()[1].startswith((str(root), str(run_dir(root))))]  # fmt: skip
    if _run("ip", "-o", "link", "show", BRIDGE, check=False).strip():
        found.append(f"link {BRIDGE}")
    if run_dir(root).exists():
        found.append(f"folder {run_dir(root)}")
    found += [f"link {line.split(':')[1].strip()}" for line in _run("ip", "-o", "link", "show", "master", BRIDGE,
                                                                       check=False).splitlines()]  # fmt: skip
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            with contextlib.suppress(OSError):
                if str(root).encode() in (proc / "cmdline").read_bytes():
                    found.append(f"process {proc.name}")
    return found


def _resolves(name: str) -> bool:
    import dns.message
    import dns.query

    reply = dns.query.udp(dns.message.make_query(name, "A"), GATEWAY, timeout=2)
    return bool(reply.answer)


def _http_ok(url: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback http
        return bool(response.status == 200)


def _healthz(port: int) -> bool:
    import ssl
    import urllib.request

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the scheduler serves /healthz with a certificate it signs itself
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=2, context=context) as response:
        return bool(response.read().strip() == b"ok")


def pause_image_archive(binary: Path) -> bytes:
    """An OCI image archive holding only the pause binary (the sandbox image), for `ctr images import`."""

    def blob(data: bytes) -> tuple[str, bytes]:
        return "sha256:" + hashlib.sha256(data).hexdigest(), data

    layer_tar = io.BytesIO()
    with tarfile.open(fileobj=layer_tar, mode="w") as tar:
        info = tarfile.TarInfo("pause")
        info.size, info.mode = binary.stat().st_size, 0o755
        tar.addfile(info, io.BytesIO(binary.read_bytes()))
    diff_id, _ = blob(layer_tar.getvalue())
    layer_digest, layer = blob(gzip.compress(layer_tar.getvalue(), mtime=0))
    config_digest, config = blob(json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }).encode())  # fmt: skip
    manifest_digest, manifest = blob(json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest,
                    "size": len(layer)}],
    }).encode())  # fmt: skip
    index = json.dumps({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
                       "size": len(manifest), "annotations": {"io.containerd.image.name": PAUSE_IMAGE,
                                                              "org.opencontainers.image.ref.name": "3.10"}}],
    }).encode()  # fmt: skip
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        entries = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index)]
        entries += [(f"blobs/sha256/{d.split(':')[1]}", data) for d, data in
                    ((layer_digest, layer), (config_digest, config), (manifest_digest, manifest))]  # fmt: skip
        for name, data in entries:
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data))
    return archive.getvalue()
