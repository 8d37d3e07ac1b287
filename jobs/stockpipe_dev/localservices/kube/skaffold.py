"""skaffold on the local cluster: the binary built once from its vendored source, and the session it runs in.

No skaffold release can be downloaded here and the Go proxy cannot build it, but its source with every
dependency vendored is in `../shared/vendor/` (STOCKPIPE_VENDOR_DIR): `go build -mod=vendor` with no
network, cached under `<cache>/skaffold-<version>`. A user installs skaffold's release instead.

`skaffold_session` is what `stockpipe cluster skaffold ...` runs skaffold in, on a running node: the
local Kafka broker and MinIO on the bridge's gateway with the topics, the lake's Secret and the
warehouse's volume the chart expects (as the node tests have them), the images' bases and the
wheelhouse served on loopback (what `make images` passes to docker build), and an environment in which
skaffold's `local-node` profile finds all of them, the node's `kind` loader and helm.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from stockpipe.paths import cache_dir
from stockpipe_dev.localservices.docker import running_engine
from stockpipe_dev.localservices.imagebuild import (
    AIRFLOW_BASE,
    PYTHON_BASE,
    build_wheelhouse,
    repo_root,
    resolve_bases,
    serve_wheelhouse,
)
from stockpipe_dev.localservices.kube.chartdeps import ensure_chart_dependencies
from stockpipe_dev.localservices.kube.controlplane import ControlPlane
from stockpipe_dev.localservices.kube.deploy import ensure_node_services
from stockpipe_dev.localservices.kube.kindload import ensure_kind_loader
from stockpipe_dev.localservices.process import ServiceError
from stockpipe_dev.localservices.toolchain import helm_path, require
from stockpipe_dev.localservices.vendor import vendored

SKAFFOLD_VERSION = "v2.24.0"
SKAFFOLD_SOURCE = f"skaffold-{SKAFFOLD_VERSION.removeprefix('v')}-src.tar.xz"
# skaffold's release build: a static binary with its own time zone data, and the version it reports.
_TAGS = "timetzdata osusergo netgo static_build release"
_LDFLAGS = f"-s -w -X github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version.version={SKAFFOLD_VERSION}"
# The namespace skaffold.yaml's local-node profile deploys to.
NAMESPACE = "stockpipe"


def skaffold_path() -> Path:
    return cache_dir() / f"skaffold-{SKAFFOLD_VERSION}" / "skaffold"


def ensure_skaffold(echo: Callable[[str], None] = print) -> Path:
    """The cached skaffold binary, built from the vendored source the first time (about 3.5 min of 2 cores)."""
    target = skaffold_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_file():
            return target
        go = require("go", "install Go 1.24+ (https://go.dev/doc/install or Debian's golang)")
        source = cache_dir() / "src"
        tree = source / SKAFFOLD_SOURCE.removesuffix("-src.tar.xz")
        if not (tree / "go.mod").is_file():
            source.mkdir(parents=True, exist_ok=True)
            with tarfile.open(vendored(SKAFFOLD_SOURCE)) as archive:
                archive.extractall(source, filter="data")
        log = target.parent / "build.log"
        echo(f"building skaffold {SKAFFOLD_VERSION} from its vendored source (minutes, once; log {log})")
        started = time.monotonic()
        env = {
            **os.environ,
            "GOPROXY": "off",
            "GOFLAGS": "-mod=vendor -buildvcs=false",
            "CGO_ENABLED": "0",
            "GOCACHE": os.environ.get("STOCKPIPE_GOCACHE", str(cache_dir() / "gocache")),
        }
        partial = target.with_suffix(".partial")
        argv = ["nice", "-n", "10", go, "build", "-trimpath", "-tags", _TAGS, "-ldflags", _LDFLAGS,
                "-o", str(partial), "./cmd/skaffold"]  # fmt: skip
        with open(log, "w") as out:
            result = subprocess.run(argv, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
        if result.returncode != 0:
            raise ServiceError(f"skaffold build failed:\n{log.read_text(errors='replace')[-3000:]}")
        partial.rename(target)
        echo(f"built skaffold in {time.monotonic() - started:.0f}s")
    return target


@contextlib.contextmanager
def skaffold_session(
    plane: ControlPlane, work: Path, project: Path, deploys: bool, echo: Callable[[str], None] = print
) -> Iterator[dict[str, str]]:
    """The environment skaffold's local-node profile runs in.

    Always: the Docker engine holding the images' bases, the wheelhouse served on loopback, the chart's
    dependencies in `project`'s charts/stockpipe/charts and helm on PATH (enough for `render` and `build`,
    which need no cluster).
    `deploys` (dev, run, deploy, delete): also a running node, its `kind` loader on PATH, and the local
    broker and MinIO on the gateway at the ports ci/local-node-values.yaml names, which stay up for the
    pods skaffold leaves behind (`run`) until `stockpipe cluster down`. The engine and the wheelhouse
    stop on exit.
    """
    skaffold = ensure_skaffold(echo)
    helm = helm_path()
    ensure_chart_dependencies(project / "charts" / "stockpipe", echo)
    work.mkdir(parents=True, exist_ok=True)
    path = [str(skaffold.parent), str(helm.parent)]
    env = {"SKAFFOLD_UPDATE_CHECK": "false", "SKAFFOLD_DISABLE_MONITORING": "true"}
    with contextlib.ExitStack() as stack:
        if deploys:
            info = plane.info()
            if info is None or not plane.running("kubelet"):
                raise ServiceError("no node runs: `stockpipe cluster up --with-node` first")
            path.insert(0, str(ensure_kind_loader(plane.layout).parent))
            env["KUBECONFIG"] = info.kubeconfig
            ensure_node_services(plane, work, NAMESPACE)
        engine = stack.enter_context(running_engine())
        log = work / "images.log"
        bases = resolve_bases(engine, log)
        wheelhouse = stack.enter_context(serve_wheelhouse(build_wheelhouse(repo_root(), log)))
        yield {
            **os.environ,
            **engine.env(),
            **env,
            "PATH": os.pathsep.join([*path, os.environ.get("PATH", "/usr/bin:/bin")]),
            # The Dockerfile's own defaults where they can be pulled; the debootstrapped base where not.
            "STOCKPIPE_PYTHON_BASE": bases.get("PYTHON_BASE", PYTHON_BASE),
            "STOCKPIPE_AIRFLOW_BASE": bases.get("AIRFLOW_BASE", AIRFLOW_BASE),
            "STOCKPIPE_WHEELHOUSE_URL": wheelhouse,
        }


# skaffold's commands that talk to the cluster; the others (render, build, diagnose, ...) need none.
DEPLOYING_COMMANDS = frozenset({"dev", "run", "deploy", "delete", "apply", "debug", "verify"})


def run_skaffold(args: list[str], env: dict[str, str], cwd: Path) -> int:
    """skaffold `args` in `cwd`, in a process group of its own: Ctrl-C (SIGINT) and SIGTERM reach it once,
    from here, so it cleans up what it deployed (a second SIGINT would make it abort the cleanup)."""
    child = subprocess.Popen([str(skaffold_path()), *args], cwd=cwd, env=env, start_new_session=True)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
