"""JSON logs on stderr with secrets redacted, for every workload."""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

# Finnhub (and other HTTP APIs) carry the key in the query string; never let it reach a log line.
_SECRET_QUERY = re.compile(r"(?i)((?:token|apikey|api_key|key|password|secret)=)[^&\s\"']+")
# A Slack incoming webhook's path is its secret (hooks.slack.com/services/T.../B.../...).
_WEBHOOK_PATH = re.compile(r"(/services/)[A-Za-z0-9_\-]+/[A-Za-z0-9_\-]+/[A-Za-z0-9_\-]+")
_registered_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret so that it is masked wherever it would be logged."""
    if value and len(value) >= 4:
        _registered_secrets.add(value)


def redact(text: str) -> str:
    text = _SECRET_QUERY.sub(r"\1***", text)
    text = _WEBHOOK_PATH.sub(r"\1***", text)
    for secret in _registered_secrets:
        text = text.replace(secret, "***")
    return text


class JsonFormatter(logging.Formatter):
    _std = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._std and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(payload, default=str))


class RedactingFilter(logging.Filter):
    """Masks secrets in records that other formatters (rich, Airflow) render: message, traceback, stack."""

    _render = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = f"{record.msg} {record.args}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            # Formatters print exc_text when it is set: the traceback (URLs in exception messages) redacted.
            record.exc_text = self._render.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class RedactingFormatter(logging.Formatter):
    """Plain text for a terminal, the whole rendered record redacted (tracebacks included)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _redacting_excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """An uncaught exception's traceback, redacted, on stderr (the default hook would print the raw one)."""
    sys.stderr.write(redact("".join(traceback.format_exception(kind, exc, tb))))


def _redacting_thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread else "?"
    text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
    sys.stderr.write(redact(f"Exception in thread {name}:\n{text}"))


def setup_logging(level: str = "INFO", json_logs: bool | None = None) -> None:
    """JSON when not on a terminal (pods, CI), plain text on a terminal."""
    if json_logs is None:
        json_logs = not sys.stderr.isatty()
    handler = logging.StreamHandler(sys.stderr)
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    sys.excepthook = _redacting_excepthook
    threading.excepthook = _redacting_thread_excepthook
    # Libraries that log full request URLs (with the Finnhub token) at DEBUG.
    for noisy in ("urllib3", "botocore", "s3fs", "aiobotocore", "fsspec", "slack_sdk"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))
