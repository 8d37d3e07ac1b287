"""Kubernetes and etcd binaries built from their Go modules, once, into the cache.

No release binary can be downloaded here, but the Go module proxy serves `k8s.io/kubernetes` (which
needs its 31 staging modules replaced by their published versions, see gomod/kube/go.mod) and etcd's
server module. The modules' go.mod/go.sum live in this package as data and are copied into the cache
to build; GOMODCACHE and GOCACHE are under the cache too, so a cold CI run reuses every download.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from stockpipe.paths import cache_dir
from stockpipe_dev.localservices.process import ServiceError
from stockpipe_dev.localservices.toolchain import require

KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.16"
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager")
NODE = ("kube-scheduler", "kubelet", "kube-proxy", "pause")
KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")

_GOMOD = Path(__file__).with_name("gomod")
# Without these the server reports v0.0.0 and helm's kubeVersion checks fail.
_VERSION_LDFLAGS = " ".join(
    f"-X k8s.io/component-base/version.{key}={value}"
    for key, value in (
        ("gitVersion", KUBERNETES_VERSION),
        ("gitMajor", "1"),
        ("gitMinor", KUBERNETES_VERSION.split(".")[1]),
        ("gitTreeState", "clean"),
    )
)


def binaries_dir() -> Path:
    return cache_dir() / f"kube-{KUBERNETES_VERSION}"


def built(names: Iterable[str]) -> bool:
    return all((binaries_dir() / name).is_file() for name in names)


def _go_env() -> dict[str, str]:
    return {
        **os.environ,
        "GOMODCACHE": os.environ.get("GOMODCACHE", str(cache_dir() / "gomod")),
        "GOCACHE": os.environ.get("STOCKPIPE_GOCACHE", str(cache_dir() / "gocache")),
        "GOFLAGS": "-buildvcs=false -mod=mod",
        "CGO_ENABLED": "0",
    }


def _build(module: str, packages: list[str], ldflags: str, echo: Callable[[str], None]) -> None:
    go = require("go", "install Go 1.24+ (https://go.dev/doc/install or Debian's golang)")
    workdir = cache_dir() / "kube-build" / module
    workdir.mkdir(parents=True, exist_ok=True)
    for source in (_GOMOD / module).iterdir():
        shutil.copyfile(source, workdir / source.name)
    staging = binaries_dir() / f".build-{module}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log = workdir / "build.log"
    started = time.monotonic()
    names = [module] if packages == ["."] else [Path(p).name for p in packages]
    echo(f"building {', '.join(names)} from source (the first time takes minutes; log {log})")
    with open(log, "w") as out:
        result = subprocess.run(
            ["nice", "-n", "10", go, "build", "-trimpath", "-ldflags", ldflags, "-o", f"{staging}/", *packages],
            cwd=workdir,
            env=_go_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if result.returncode != 0:
        raise ServiceError(f"go build in {workdir} failed:\n{log.read_text(errors='replace')[-3000:]}")
    for binary in staging.iterdir():
        os.replace(binary, binaries_dir() / (binary.name if module == "kube" else module))
    staging.rmdir()
    echo(f"built in {time.monotonic() - started:.0f}s")


def ensure_binaries(names: Iterable[str] = CONTROL_PLANE, echo: Callable[[str], None] = print) -> dict[str, Path]:
    """Build whichever of `names` are not cached yet (one build at a time across processes)."""
    wanted = list(names)
    binaries_dir().mkdir(parents=True, exist_ok=True)
    with open(binaries_dir() / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for module in ("etcd", "pause"):
            if module in wanted and not built([module]):
                _build(module, ["."], "-s -w", echo)
        missing = [name for name in KUBE_COMMANDS if name in wanted and not built([name])]
        if missing:
            _build("kube", [f"k8s.io/kubernetes/cmd/{name}" for name in missing], f"-s -w {_VERSION_LDFLAGS}", echo)
    return {name: binaries_dir() / name for name in wanted}
