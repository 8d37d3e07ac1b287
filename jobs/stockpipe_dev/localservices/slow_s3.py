"""A slow S3 in front of a real one: a fraction of requests answered `503 SlowDown`, the rest forwarded.

It can also pose as a store that ignores `If-None-Match: *` (`ignore_if_none_match`).

It can also hold requests (`hold()` ... `release()`): a client's call stays in flight, unanswered and
not yet seen by the store, for as long as a test needs (a writer frozen in the middle of a write).

Toxiproxy works on TCP and cannot make up an HTTP answer; S3 throttles with `503 SlowDown` (its
error XML, `Retry-After`-less), which clients must back off from. This stand-in forwards every other
request unchanged (headers included, so SigV4 signatures still hold) to the upstream endpoint.
"""

from __future__ import annotations

import http.client
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

_SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}


class SlowS3:
    def __init__(self, upstream: str, slow_down_ratio: float, seed: int = 0, port: int = 0) -> None:
        target = urlsplit(upstream)
        self.upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.ratio = slow_down_ratio
        self._rng = random.Random(seed)  # noqa: S311 - reproducible faults, not security
        self._lock = threading.Lock()
        self.requests = 0
        self.slowed = 0
        self.held = 0  # requests waiting at the gate now
        # Answer a conditional PUT the store refused (412) as a success, as stores that ignore it do.
        self.ignore_if_none_match = False
        self._gate = threading.Event()
        self._gate.set()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                standin._pass_gate()
                if standin._slow_down():
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(_SLOW_DOWN)))
                    self.end_headers()
                    self.wfile.write(_SLOW_DOWN)
                    return
                conn = http.client.HTTPConnection(*standin.upstream, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                    conn.request(self.command, self.path, body=body if length else None, headers=headers)
                    resp = conn.getresponse()
                    payload = resp.read()
                    if resp.status == 412 and standin.ignore_if_none_match and "If-None-Match" in self.headers:
                        # A store that ignores the header: the refused overwrite is answered as done.
                        self.send_response(200)
                        self.send_header("ETag", '"ignored-if-none-match"')
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(resp.status, resp.reason)
                    for key, value in resp.getheaders():
                        if key.lower() not in _HOP and key.lower() != "content-length":
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    def hold(self) -> None:
        """From now on, requests wait here (unforwarded) until release()."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def _pass_gate(self) -> None:
        if self._gate.is_set():
            return
        with self._lock:
            self.held += 1
        self._gate.wait(600)
        with self._lock:
            self.held -= 1

    def _slow_down(self) -> bool:
        with self._lock:
            self.requests += 1
            slow = self._rng.random() < self.ratio
            self.slowed += slow
            return slow

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> SlowS3:
        self._thread = threading.Thread(target=self._server.serve_forever, name="slow-s3", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)
