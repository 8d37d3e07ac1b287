"""A local stand-in for Slack incoming webhooks: records every post, answers like Slack.

`GET /_standin/messages` lists what was posted; `POST /_standin/fail` (`{"count": n, "status": 429}`)
makes the next n posts fail (429 with Retry-After, like Slack's rate limit).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from typing import Any

from stockpipe_dev.localservices.http_standin import HttpStandin, Response, StandinRequest


class SlackWebhookStandin(HttpStandin):
    def __init__(self, port: int = 0) -> None:
        super().__init__(port)
        self._lock = threading.Lock()
        self.messages: list[dict[str, Any]] = []
        self._failures: deque[int] = deque()

    def webhook_url(self, path: str = "/services/T000/B000/standin") -> str:
        return f"{self.url}{path}"

    def fail_next(self, count: int, status: int = 429) -> None:
        with self._lock:
            self._failures.extend([status] * count)

    def texts(self) -> list[str]:
        with self._lock:
            return [str(m["payload"].get("text", "")) for m in self.messages]

    def handle(self, request: StandinRequest) -> Response:
        if request.path == "/_standin/messages":
            with self._lock:
                return 200, list(self.messages), {}
        if request.path == "/_standin/fail":
            spec = json.loads(request.body or b"{}")
            self.fail_next(int(spec.get("count", 1)), int(spec.get("status", 429)))
            return 200, {"ok": True}, {}
        if request.method != "POST" or not request.path.startswith("/services/"):
            return 404, "no_service", {}
        with self._lock:
            if self._failures:
                status = self._failures.popleft()
                return status, "rate_limited" if status == 429 else "internal_error", {"Retry-After": "1"}
        try:
            payload = json.loads(request.body)
        except ValueError:
            return 400, "invalid_payload", {}
        if not isinstance(payload, dict) or not (payload.get("text") or payload.get("blocks")):
            return 400, "no_text", {}
        with self._lock:
            self.messages.append({"path": request.path, "payload": payload})
        return 200, "ok", {}
