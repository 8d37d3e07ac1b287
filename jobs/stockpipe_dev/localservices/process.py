"""Start, watch and stop the local service processes (detached, in their own process group)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path


class ServiceError(RuntimeError):
    """A local service could not be set up, started or checked."""


# Not the `random` module's state: a test (or hypothesis) may seed it, and parallel test workers would
# then try the same ports in the same order.
_PORTS = random.SystemRandom()


# Ports this process handed out, each with an exclusive lock on a file named for it: another process
# (a second test worker) skips a port whose file is locked, so two processes never get the same port
# between the check and the service's bind. The locks go when the process exits.
_PORT_LOCK_DIR = Path("/tmp/stockpipe-port-locks")  # noqa: S108  # shared by every process of this user
_HANDED_OUT: dict[int, int] = {}


def _reserve(port: int) -> bool:
    if port in _HANDED_OUT:
        return False
    _PORT_LOCK_DIR.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(_PORT_LOCK_DIR / str(port), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _HANDED_OUT[port] = fd
    return True


def free_port() -> int:
    """A free loopback port below Linux's ephemeral range (32768+), reserved for this process.

    A port handed out by bind(0) is an ephemeral one, which any outgoing connection may take before
    the service that was meant to get it binds it; below that range only listeners compete. The
    default service ports (19000-19099) and the demo's (29000-29099) are left alone.
    """
    for _ in range(200):
        port = _PORTS.randrange(20_000, 32_000)
        if 29_000 <= port < 29_100 or not _reserve(port):
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use by a listener: keep it reserved, so no one here tries it again
            return port
    raise ServiceError("no free port between 20000 and 32000 on 127.0.0.1")


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Something accepts TCP connections on host:port (loopback unless a service listens elsewhere)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); look at its state.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


@dataclass
class ProcessRecord:
    """What `services down` needs to stop a service started by another process."""

    name: str
    pid: int
    log_file: str
    ports: dict[str, int] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.chmod(0o600)  # it may hold local credentials
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> ProcessRecord:
        return cls(**json.loads(path.read_text()))


def spawn(argv: list[str], log_file: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,  # survives the CLI that started it; stopped as a group
        )
    return proc.pid


def wait_until(
    check: Callable[[], bool], timeout_s: float, what: str, pid: int | None = None, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pid is not None and not pid_alive(pid):
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise ServiceError(f"{what}: the process exited during start-up. Log tail:\n{tail}")
        try:
            if check():
                return
        except Exception:  # noqa: S110 - not ready yet is expected while it starts
            pass
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise ServiceError(f"{what}: not ready after {timeout_s:.0f}s. Log tail:\n{tail}")


def terminate(pid: int, grace_s: float = 20.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after the grace period."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not pid_alive(pid):
                return
            time.sleep(0.1)
    raise ServiceError(f"process {pid} did not stop")
