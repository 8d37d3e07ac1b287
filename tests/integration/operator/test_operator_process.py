"""`python -m stockpipe.operator` as a process, the way the Deployment runs it: settings from the
environment, login from the kubeconfig, liveness endpoint, JSON logs, clean exit on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from stockpipe.contracts.watchlist import WATCHLIST_FILE_KEY, Watchlist
from stockpipe_dev.localservices.process import free_port
from tests.integration.operator.kube_emulator import ApiServerThread, Kube, wait_for
from tests.integration.operator.operator_harness import CM_PATH, NAMESPACE, TW_PATH, write_kubeconfig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310  (loopback)
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError):
        return False


def test_operator_process_serves_and_stops_on_sigterm(apiserver: ApiServerThread, kube: Kube, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(write_kubeconfig(tmp_path / "kubeconfig", apiserver.url)),
        "STOCKPIPE_NAMESPACE": NAMESPACE,
        "STOCKPIPE_RESYNC_SECONDS": "1",
        "STOCKPIPE_LIVENESS_HOST": "127.0.0.1",
        "STOCKPIPE_LIVENESS_PORT": str(port),
        "STOCKPIPE_LOG_LEVEL": "INFO",
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)  # not in a pod: use the kubeconfig
    log = tmp_path / "operator.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "stockpipe.operator"], env=env, stdout=stderr, stderr=stderr, cwd=tmp_path
        )
    try:
        wait_for(
            "the liveness endpoint", lambda: process.poll() is None and healthy(f"http://127.0.0.1:{port}/healthz")
        )
        kube.create(
            TW_PATH,
            {
                "apiVersion": "stockpipe.io/v1alpha1",
                "kind": "TickerWatchlist",
                "metadata": {"name": "tech"},
                "spec": {"symbols": ["MSFT", "AAPL"]},
            },
        )
        cm = wait_for("the ConfigMap", lambda: kube.get_or_none(CM_PATH))
        assert Watchlist.model_validate_json(cm["data"][WATCHLIST_FILE_KEY]).symbols == ["AAPL", "MSFT"]

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.startswith("{")]
    assert any(entry["msg"] == "ConfigMap stockpipe-watchlist created" for entry in lines), log.read_text()
    assert not [entry for entry in lines if entry["level"] == "error"], log.read_text()
    assert not [entry for entry in lines if "settings" in entry or entry["logger"] == "aiohttp.access"]
