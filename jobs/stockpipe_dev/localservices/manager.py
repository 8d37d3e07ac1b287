"""`stockpipe services up|down|status|env`: the local services as background processes.

State (pids, ports, generated local credentials) lives in the state directory, one JSON file per service.
"""

from __future__ import annotations

import json
import secrets
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stockpipe.paths import state_dir
from stockpipe_dev.localservices.health import check_kafka, check_object_store
from stockpipe_dev.localservices.kafka import KafkaBroker, ensure_kafka_jars
from stockpipe_dev.localservices.minio import MinioServer, ensure_minio
from stockpipe_dev.localservices.process import (
    ProcessRecord,
    ServiceError,
    pid_alive,
    port_in_use,
    spawn,
    terminate,
    wait_until,
)
from stockpipe_dev.localservices.toolchain import coredns_path, go_install, helm_path
from stockpipe_dev.localservices.versions import (
    HELM_DOCS_MODULE,
    HELM_DOCS_VERSION,
    KUBECONFORM_MODULE,
    KUBECONFORM_VERSION,
)

SERVICES = ("kafka", "minio", "finnhub", "slack", "tiingo")
_STATUS_PATH = {"finnhub": "/_standin/stats", "tiingo": "/_standin/stats", "slack": "/_standin/messages"}


@dataclass(frozen=True)
class Ports:
    kafka: int = 19092
    kafka_controller: int = 19093
    minio: int = 19000
    minio_console: int = 19001
    finnhub: int = 19080
    slack: int = 19081
    tiingo: int = 19082

    @classmethod
    def from_base(cls, base: int) -> Ports:
        """All ports shifted together, so a second set of services can run beside the first."""
        return cls(base + 92, base + 93, base, base + 1, base + 80, base + 81, base + 82)


def _record_path(name: str) -> Path:
    return state_dir() / f"{name}.json"


def running(name: str) -> ProcessRecord | None:
    path = _record_path(name)
    if not path.exists():
        return None
    record = ProcessRecord.load(path)
    return record if pid_alive(record.pid) else None


def _check_free(ports: dict[str, int]) -> None:
    busy = [f"{k}={p}" for k, p in ports.items() if port_in_use(p)]
    if busy:
        raise ServiceError(f"ports already in use: {', '.join(busy)} (another process? `stockpipe services down`)")


def _start_standin(name: str, port: int, extra: dict[str, str]) -> ProcessRecord:
    log = state_dir() / f"{name}.log"
    argv = [sys.executable, "-m", "stockpipe_dev.localservices.standin_main", name, "--port", str(port)]
    if name == "finnhub":
        argv += ["--free-token", extra["free_token"], "--premium-token", extra["premium_token"]]
    elif name == "tiingo":
        argv += ["--free-token", extra["token"]]
    pid = spawn(argv, log)

    def ready() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{_STATUS_PATH[name]}", timeout=2) as resp:
            return bool(resp.status == 200)

    wait_until(ready, 20, f"{name} stand-in", pid=pid, log=log)
    return ProcessRecord(name=name, pid=pid, log_file=str(log), ports={"http": port}, extra=extra)


def up(
    ports: Ports = Ports(), echo: Callable[[str], None] = print, only: tuple[str, ...] = SERVICES
) -> dict[str, ProcessRecord]:
    started: dict[str, ProcessRecord] = {}
    for name in (s for s in SERVICES if s in only):
        record = running(name)
        if record:
            echo(f"{name}: already running (pid {record.pid})")
            started[name] = record
            continue
        base = state_dir() / name
        if name == "kafka":
            _check_free({"kafka": ports.kafka, "kafka_controller": ports.kafka_controller})
            record = KafkaBroker(base, ports.kafka, ports.kafka_controller).start()
        elif name == "minio":
            _check_free({"minio": ports.minio, "minio_console": ports.minio_console})
            record = MinioServer(base, ports.minio, ports.minio_console).start()
        elif name == "finnhub":
            _check_free({"finnhub": ports.finnhub})
            tokens = {"free_token": secrets.token_hex(10), "premium_token": secrets.token_hex(10)}
            record = _start_standin(
                "finnhub", ports.finnhub, {**tokens, "api_url": f"http://127.0.0.1:{ports.finnhub}/api/v1"}
            )
        elif name == "tiingo":
            _check_free({"tiingo": ports.tiingo})
            record = _start_standin(
                "tiingo", ports.tiingo, {"token": secrets.token_hex(10), "api_url": f"http://127.0.0.1:{ports.tiingo}"}
            )
        else:
            _check_free({"slack": ports.slack})
            record = _start_standin(
                "slack", ports.slack, {"webhook_url": f"http://127.0.0.1:{ports.slack}/services/T000/B000/local"}
            )
        record.save(_record_path(name))
        started[name] = record
        echo(f"{name}: started (pid {record.pid}, ports {record.ports})")
    return started


def down(echo: Callable[[str], None] = print) -> None:
    for name in reversed(SERVICES):
        path = _record_path(name)
        if not path.exists():
            continue
        record = ProcessRecord.load(path)
        if pid_alive(record.pid):
            terminate(record.pid, grace_s=30)
            echo(f"{name}: stopped (pid {record.pid})")
        path.unlink()


def status() -> dict[str, tuple[bool, str]]:
    """Each service's health, by doing real work with it."""
    result: dict[str, tuple[bool, str]] = {}
    for name in SERVICES:
        record = running(name)
        if record is None:
            result[name] = (False, "not running")
            continue
        try:
            if name == "kafka":
                detail = check_kafka(record.extra["bootstrap"])
            elif name == "minio":
                server = MinioServer(
                    Path(record.extra["data_dir"]),
                    record.ports["api"],
                    record.ports["console"],
                    bucket=record.extra["bucket"],
                    access_key=record.extra["access_key"],
                    secret_key=record.extra["secret_key"],
                )
                detail = check_object_store(server.filesystem(), server.bucket)
            else:
                url = f"http://127.0.0.1:{record.ports['http']}{_STATUS_PATH[name]}"
                with urllib.request.urlopen(url, timeout=5) as resp:
                    body = json.loads(resp.read())
                if name == "slack":
                    served = f"{len(body)} messages recorded"
                elif name == "tiingo":
                    served = f"{body['calls']} calls served"
                else:
                    served = f"{sum(body['calls_by_path'].values())} calls served"
                detail = f"answering on port {record.ports['http']} ({served})"
            result[name] = (True, detail)
        except Exception as exc:
            result[name] = (False, f"unhealthy: {exc}")
    return result


def env_exports() -> dict[str, str]:
    """Settings that point the pipeline at the running local services."""
    env: dict[str, str] = {}
    if kafka := running("kafka"):
        env["STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS"] = kafka.extra["bootstrap"]
    if minio := running("minio"):
        env.update(
            {
                "STOCKPIPE_LAKE__URL": f"s3://{minio.extra['bucket']}",
                "STOCKPIPE_LAKE__S3_ENDPOINT_URL": minio.extra["endpoint"],
                "STOCKPIPE_LAKE__ACCESS_KEY": minio.extra["access_key"],
                "STOCKPIPE_LAKE__SECRET_KEY": minio.extra["secret_key"],
            }
        )
    if finnhub := running("finnhub"):
        env["STOCKPIPE_FINNHUB_API_URL"] = finnhub.extra["api_url"]
    if tiingo := running("tiingo"):
        env["STOCKPIPE_TIINGO_API_URL"] = tiingo.extra["api_url"]
    if slack := running("slack"):
        env["STOCKPIPE_SLACK_WEBHOOK_URL"] = slack.extra["webhook_url"]
    return env


def prefetch(echo: Callable[[str], None] = print, *, with_node: bool = False) -> None:
    """Download and build every local service and tool once (the cold part of `make setup`); the node's
    binaries (kubelet, kube-proxy, scheduler, pause) and skaffold only `with_node`: only `make e2e` runs a
    node."""
    echo(f"kafka jars: {ensure_kafka_jars()}")
    echo(f"minio: {ensure_minio()}")
    echo(f"helm: {helm_path()}")
    echo(f"kubeconform: {go_install(KUBECONFORM_MODULE, KUBECONFORM_VERSION, 'kubeconform')}")
    echo(f"helm-docs: {go_install(HELM_DOCS_MODULE, HELM_DOCS_VERSION, 'helm-docs')}")
    from stockpipe_dev.localservices.toxiproxy import ensure_toxiproxy  # the chaos scenarios' fault proxy

    echo(f"toxiproxy: {ensure_toxiproxy()}")
    # The local Kubernetes cluster's binaries, built from source (first time: ~7 min of 2 cores; the node ~1 more).
    from stockpipe_dev.localservices.kube.build import CONTROL_PLANE, NODE, binaries_dir, ensure_binaries

    ensure_binaries((*CONTROL_PLANE, *NODE) if with_node else CONTROL_PLANE, echo=echo)
    echo(f"kubernetes: {binaries_dir()}")
    if with_node:  # the node's DNS, and skaffold (from its vendored source, ~3.5 min once) for `make e2e`
        from stockpipe_dev.localservices.kube.skaffold import ensure_skaffold

        echo(f"coredns: {coredns_path()}")
        echo(f"skaffold: {ensure_skaffold(echo)}")
