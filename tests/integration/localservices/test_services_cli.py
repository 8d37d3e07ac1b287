"""`stockpipe services up|status|down` as a user runs them."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from stockpipe_dev.localservices.manager import Ports
from stockpipe_dev.localservices.process import pid_alive, port_in_use

pytestmark = pytest.mark.timeout(300)


def free_base() -> int:
    # Below Linux's ephemeral range (32768+), where other tests' client sockets could take a port
    # between this check and the bind; and away from the defaults (19000) and the demo's (29000).
    for _ in range(50):
        base = random.choice([b for b in range(20_000, 32_000, 100) if b not in (29_000,)])
        ports = Ports.from_base(base)
        if not any(port_in_use(p) for p in vars(ports).values()):
            return base
    raise RuntimeError("no free port range")


def stockpipe(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockpipe.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_up_status_down_leaves_nothing_running(tmp_path: Path) -> None:
    env = {**os.environ, "STOCKPIPE_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}
    base = free_base()
    up = stockpipe(["services", "up", "--port-base", str(base)], env)
    assert up.returncode == 0, up.stderr
    records = [json.loads(p.read_text()) for p in (tmp_path / "state").glob("*.json")]
    assert {r["name"] for r in records} == {"kafka", "minio", "finnhub", "slack", "tiingo"}
    try:
        status = stockpipe(["services", "status"], env)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "record produced and consumed back" in status.stdout
        assert "object put and read back" in status.stdout
        exports = stockpipe(["services", "env"], env).stdout
        assert f"STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:{base + 92}" in exports
    finally:
        down = stockpipe(["services", "down"], env)
    assert down.returncode == 0, down.stderr
    assert not any(pid_alive(r["pid"]) for r in records)
    assert not any(port_in_use(p) for p in vars(Ports.from_base(base)).values())
    assert stockpipe(["services", "status"], env).returncode == 1  # nothing running is unhealthy, loudly
