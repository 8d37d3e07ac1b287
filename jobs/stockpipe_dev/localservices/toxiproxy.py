"""Toxiproxy (Shopify's TCP fault proxy), built here with `go install`, driven through its HTTP API.

A proxy listens on loopback and forwards to an upstream; toxics add latency, reset connections
(`reset_peer`) or cut them (`timeout`) on the way. Used by `make chaos` between the workloads and
Kafka or S3.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stockpipe_dev.localservices.process import ProcessRecord, ServiceError, spawn, terminate, wait_until
from stockpipe_dev.localservices.toolchain import go_install
from stockpipe_dev.localservices.versions import TOXIPROXY_MODULE, TOXIPROXY_VERSION


def ensure_toxiproxy() -> Path:
    return go_install(TOXIPROXY_MODULE, TOXIPROXY_VERSION, "server")  # the module's command is named `server`


@dataclass
class Toxiproxy:
    data_dir: Path
    port: int  # the API's

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "toxiproxy.log"

    def start(self) -> ProcessRecord:
        binary = ensure_toxiproxy()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        pid = spawn(
            [str(binary), "-host", "127.0.0.1", "-port", str(self.port)], self.log_file, env={"LOG_LEVEL": "info"}
        )
        try:
            wait_until(lambda: self._call("GET", "/version") is not None, 30, "toxiproxy", pid=pid, log=self.log_file)
        except ServiceError:
            terminate(pid)  # never left running when it did not come up
            raise
        return ProcessRecord(name="toxiproxy", pid=pid, log_file=str(self.log_file), ports={"api": self.port})

    @staticmethod
    def stop(record: ProcessRecord) -> None:
        terminate(record.pid)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - loopback only
            self.api + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise ServiceError(f"toxiproxy {method} {path}: {exc.code} {exc.read()[:300]!r}") from exc
        try:
            return json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            return raw.decode(errors="replace")  # /version answers plain text

    def proxy(self, name: str, listen_port: int, upstream: str) -> str:
        """A proxy from 127.0.0.1:listen_port to upstream (host:port); returns the listen address."""
        self._call(
            "POST",
            "/proxies",
            {"name": name, "listen": f"127.0.0.1:{listen_port}", "upstream": upstream, "enabled": True},
        )
        return f"127.0.0.1:{listen_port}"

    def set_enabled(self, proxy: str, enabled: bool) -> None:
        """Disabled, a proxy closes every connection and refuses new ones (a link down)."""
        self._call("POST", f"/proxies/{proxy}", {"enabled": enabled})

    def add_toxic(
        self,
        proxy: str,
        name: str,
        kind: str,
        attributes: dict[str, int],
        stream: str = "downstream",
        toxicity: float = 1.0,
    ) -> None:
        self._call(
            "POST",
            f"/proxies/{proxy}/toxics",
            {"name": name, "type": kind, "stream": stream, "toxicity": toxicity, "attributes": attributes},
        )

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")
