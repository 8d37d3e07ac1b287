"""Prometheus metrics and a health endpoint on one port, for every long-running workload."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]


class ObservabilityServer:
    """`/metrics` (Prometheus text format) and `/healthz` (200 when healthy, 503 otherwise, JSON detail)."""

    def __init__(self, port: int, health: HealthCheck, host: str = "0.0.0.0") -> None:
        def handler_factory(*args: Any) -> BaseHTTPRequestHandler:
            return _Handler(health, *args)

        self._server = ThreadingHTTPServer((host, port), handler_factory)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="observability", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> ObservabilityServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    def __init__(self, health: HealthCheck, *args: Any) -> None:
        self._health = health
        super().__init__(*args)

    def do_GET(self) -> None:
        if self.path.startswith("/metrics"):
            body, status, ctype = generate_latest(REGISTRY), 200, CONTENT_TYPE_LATEST
        elif self.path.startswith("/healthz"):
            ok, detail = self._health()
            body, status, ctype = (
                json.dumps({"ok": ok, **detail}, default=str).encode(),
                200 if ok else 503,
                "application/json",
            )
        else:
            body, status, ctype = b"not found", 404, "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return  # scrapes every few seconds would drown the workload's own logs


def start_observability(port: int, health: HealthCheck) -> ObservabilityServer | None:
    """Start the endpoint unless port is 0 (tests and benchmarks run many workloads in one process)."""
    return ObservabilityServer(port, health).start() if port else None
