"""Where one local cluster keeps its files, what its clients need to reach it, and kubeconfigs.

Shared by the control plane and the node (each needs the other's layout, neither the other's code).
"""

from __future__ import annotations

import json
import ssl
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from stockpipe.paths import state_dir

# The admin's context. skaffold loads the images it builds only into clusters it takes for local ones,
# and for `kind-<name>` through `kind load docker-image --name <name>`, which this cluster provides for
# its node (kube/kindload.py): the name makes skaffold treat this cluster as a user's kind cluster.
ADMIN_CONTEXT = "kind-stockpipe-local"


def default_root() -> Path:
    return state_dir() / "cluster"


@dataclass(frozen=True)
class Layout:
    """Where one cluster keeps its files."""

    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def records(self) -> Path:
        return self.root / "records"

    @property
    def kubeconfig(self) -> Path:
        """The admin's kubeconfig (system:masters)."""
        return self.root / "kubeconfig"

    @property
    def info(self) -> Path:
        return self.root / "cluster.json"

    def component_kubeconfig(self, component: str) -> Path:
        return self.root / f"{component}.kubeconfig"

    def record(self, component: str) -> Path:
        return self.records / f"{component}.json"


@dataclass(frozen=True)
class ClusterInfo:
    """What clients need: the API server's URL, its CA and the admin's token."""

    server: str
    ca_file: str
    admin_token: str
    kubeconfig: str
    ports: dict[str, int]
    with_node: bool = False

    @classmethod
    def load(cls, layout: Layout) -> ClusterInfo:
        return cls(**json.loads(layout.info.read_text()))

    def save(self, layout: Layout) -> None:
        layout.info.write_text(json.dumps(self.__dict__, indent=2))
        layout.info.chmod(0o600)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def get(self, path: str, timeout_s: float = 5.0) -> bytes:
        """GET from the API server as the admin."""
        return self.request("GET", path, timeout_s=timeout_s)

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        content_type: str = "application/json",
        timeout_s: float = 5.0,
    ) -> bytes:
        """One API request as the admin (a JSON body for POST/PUT/PATCH)."""
        headers = {"Authorization": f"Bearer {self.admin_token}", "Content-Type": content_type}
        data = None if body is None else json.dumps(body).encode()
        # https to our own API server
        request = urllib.request.Request(self.server + path, data=data, method=method, headers=headers)  # noqa: S310
        with urllib.request.urlopen(request, timeout=timeout_s, context=self.ssl_context()) as response:  # noqa: S310
            answer: bytes = response.read()
            return answer


def write_kubeconfig(
    path: Path,
    server: str,
    ca_file: Path,
    user: str,
    token: str,
    namespace: str = "default",
    context: str = "stockpipe-local",
) -> Path:
    """A kubeconfig with one cluster, one token user and one context, both named `context` (JSON, which is YAML)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": user, "namespace": namespace}}],
        "current-context": context,
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path
