"""free_port under several processes: no port is handed out twice, even before any service binds it."""

from __future__ import annotations

import subprocess
import sys

from stockpipe_dev.localservices.process import free_port

PICKS = 400
PICKER = f"""
from stockpipe_dev.localservices.process import free_port
import sys
ports = [free_port() for _ in range({PICKS})]
print(" ".join(map(str, ports)))
sys.stdout.flush()
sys.stdin.read()  # hold the reservations until the test has every process's ports
"""


def test_two_processes_never_get_the_same_port() -> None:
    pickers = [
        subprocess.Popen([sys.executable, "-c", PICKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        picked = [set(map(int, p.stdout.readline().split())) for p in pickers if p.stdout]
    finally:
        for p in pickers:
            p.communicate("", timeout=30)
    assert [len(ports) for ports in picked] == [PICKS, PICKS]  # none twice within a process
    assert not picked[0] & picked[1]  # none shared between them, though no service bound any


def test_one_process_never_gets_the_same_port_twice() -> None:
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
