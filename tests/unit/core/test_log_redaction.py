"""Secrets never reach a terminal either: log lines, logged tracebacks and uncaught ones."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from stockpipe.logs import register_secret, setup_logging

SECRET = "tb-secret-7c1d9e"


@pytest.mark.usefixtures("restore_logging")
def test_a_logged_traceback_on_a_terminal_is_redacted(capfd: pytest.CaptureFixture[str]) -> None:
    register_secret(SECRET)
    setup_logging("INFO", json_logs=False)  # the terminal format, not JSON
    try:
        raise ConnectionError(f"GET https://finnhub.io/api/v1/quote?symbol=AAPL&token={SECRET} failed")
    except ConnectionError:
        logging.getLogger("test.tb").exception("quote failed for %s", SECRET)
    err = capfd.readouterr().err
    assert "Traceback" in err
    assert "ConnectionError" in err
    assert SECRET not in err


def test_an_uncaught_traceback_is_redacted() -> None:
    code = f"""
from stockpipe.logs import register_secret, setup_logging
import threading
register_secret({SECRET!r})
setup_logging("INFO", json_logs=False)
t = threading.Thread(target=lambda: 1 / 0 if False else (_ for _ in ()).throw(RuntimeError("thread {SECRET}")))
t.start(); t.join()
raise RuntimeError("https://x/quote?apikey=abc&token={SECRET}")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert "RuntimeError" in proc.stderr
    assert "Exception in thread" in proc.stderr
    assert SECRET not in proc.stderr
