"""A Docker engine for building and running the images here: Debian's `dockerd`, started as root.

It keeps its own data root (under the cache, so image layers survive between runs), its own socket,
exec root and pidfile, and no bridge or iptables rules: builds and containers use the host's network
(`--network host`), so nothing on the machine's firewall changes. One engine per machine: whoever
finds its socket answering reuses it; whoever started it stops it by its pid.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from stockpipe.paths import cache_dir, state_dir
from stockpipe_dev.localservices.process import ProcessRecord, ServiceError, pid_alive, spawn, terminate, wait_until

DOCKER_DEBIAN_PACKAGE = "docker.io"
START_TIMEOUT_S = 90.0


def docker_cli() -> str:
    """The client shipped with the engine (Debian: /usr/bin/docker) or else any `docker` on PATH."""
    if os.path.exists("/usr/bin/docker") and shutil.which("dockerd"):
        return "/usr/bin/docker"
    found = shutil.which("docker")
    if not found:
        raise ServiceError(f"no docker client: install Debian's {DOCKER_DEBIAN_PACKAGE} (apt-get install docker.io)")
    return found


@dataclass(frozen=True)
class DockerEngine:
    """Where the project's engine lives. `host` is what DOCKER_HOST must say to reach it."""

    data_root: Path
    exec_root: Path
    run_dir: Path

    @classmethod
    def default(cls) -> DockerEngine:
        run_dir = state_dir() / "docker"
        # containerd's shim sockets live under the exec root and must stay short (108-byte sun_path).
        exec_root = Path("/run/stockpipe-docker") if os.geteuid() == 0 else run_dir / "exec"
        return cls(data_root=cache_dir() / "docker" / "data", exec_root=exec_root, run_dir=run_dir)

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def record_file(self) -> Path:
        return self.run_dir / "dockerd.json"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "dockerd.log"

    def env(self) -> dict[str, str]:
        """Environment for `docker` commands against this engine (the classic builder: no buildx here)."""
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0"}

    def answers(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            result = subprocess.run(
                [docker_cli(), "version", "--format", "{{.Server.Version}}"],
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
        except (ServiceError, subprocess.TimeoutExpired):
            return False
        return result.returncode == 0 and bool(result.stdout.strip())

    def start(self) -> ProcessRecord | None:
        """Start dockerd unless one already answers on the socket; returns the record when we started it."""
        if self.answers():
            return None
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise ServiceError(f"no dockerd: install Debian's {DOCKER_DEBIAN_PACKAGE} (`make prereqs` does, as root)")
        if os.geteuid() != 0:
            raise ServiceError(
                "dockerd needs root here (no rootless set-up); run as root or point DOCKER_HOST at yours"
            )
        for path in (self.data_root, self.exec_root, self.run_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        argv = [
            dockerd,
            f"--data-root={self.data_root}",
            f"--exec-root={self.exec_root}",
            f"--pidfile={self.run_dir / 'dockerd.pid'}",
            f"--host={self.host}",
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
            "--ip-forward=false",
            "--storage-driver=overlay2",
            "--log-level=warn",
        ]
        pid = spawn(argv, self.log_file)
        record = ProcessRecord(name="dockerd", pid=pid, log_file=str(self.log_file), extra={"host": self.host})
        try:
            wait_until(self.answers, START_TIMEOUT_S, "dockerd", pid=pid, log=self.log_file)
        except ServiceError:
            terminate(pid)
            raise
        record.save(self.record_file)
        return record

    def stop(self, record: ProcessRecord | None = None) -> bool:
        """Stop the engine this project started (by its recorded pid); False when none was running."""
        if record is None:
            if not self.record_file.exists():
                return False
            record = ProcessRecord.load(self.record_file)
        if pid_alive(record.pid):
            terminate(record.pid, grace_s=30.0)
        self.record_file.unlink(missing_ok=True)
        return True


@contextmanager
def running_engine(engine: DockerEngine | None = None) -> Iterator[DockerEngine]:
    """An engine for the duration of the block: reused if one answers, else started and then stopped."""
    engine = engine or DockerEngine.default()
    record = engine.start()
    try:
        yield engine
    finally:
        if record is not None:
            engine.stop(record)


def docker(engine: DockerEngine, *args: str, check: bool = True, timeout: float | None = None) -> str:
    """Run a docker command against the engine; its stdout, or a ServiceError with stderr's tail."""
    result = subprocess.run(
        [docker_cli(), *args], env=engine.env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise ServiceError(f"docker {' '.join(args[:3])} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stockpipe_dev.localservices.docker", description=__doc__)
    parser.add_argument("action", choices=["up", "down", "status", "env"])
    args = parser.parse_args(argv)
    engine = DockerEngine.default()
    if args.action == "up":
        record = engine.start()
        print(f"dockerd {'started, pid ' + str(record.pid) if record else 'already running'}: {engine.host}")
    elif args.action == "down":
        print("dockerd stopped" if engine.stop() else "no dockerd started by stockpipe")
    elif args.action == "status":
        print(f"dockerd at {engine.host}: {'up' if engine.answers() else 'down'}")
        return 0 if engine.answers() else 1
    else:
        print(f"export DOCKER_HOST={engine.host}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
