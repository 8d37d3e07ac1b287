"""The base of the local HTTP stand-ins: a threaded server on loopback with JSON helpers."""

from __future__ import annotations

import abc
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class StandinRequest:
    def __init__(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        parts = urlsplit(handler.path)
        # finnhub-python joins API_URL and "/quote" into ".../v1//quote": normalise like a real server.
        self.path = "/" + "/".join(p for p in parts.path.split("/") if p)
        self.query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.headers = dict(handler.headers.items())
        self.body = body
        self.method = handler.command


Response = tuple[int, Any, dict[str, str]]


class HttpStandin(abc.ABC):
    """Subclasses answer `handle(request)` with (status, body, headers); body dicts are sent as JSON."""

    def __init__(self, port: int = 0) -> None:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = StandinRequest(self, self.rfile.read(length) if length else b"")
                status, body, headers = standin.handle(request)
                if isinstance(body, dict | list):
                    payload = json.dumps(body).encode()
                    headers = {"Content-Type": "application/json; charset=utf-8", **headers}
                else:
                    payload = str(body).encode()
                    headers = {"Content-Type": "text/plain; charset=utf-8", **headers}
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return  # request lines carry tokens; the stand-in keeps its own counts instead

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @abc.abstractmethod
    def handle(self, request: StandinRequest) -> Response:
        """Answer one request."""

    def start(self) -> HttpStandin:
        self._thread = threading.Thread(target=self._server.serve_forever, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> HttpStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
