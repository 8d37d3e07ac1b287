"""The host tools the dev tooling builds with: a tool that must be on PATH, and Go programs built once
into the cache with `go install`."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from stockpipe.paths import bin_dir, cache_dir
from stockpipe_dev.localservices.process import ServiceError


def require(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise ServiceError(f"`{tool}` is not installed: {hint}")
    return path


def go_install(module: str, version: str, binary: str, ldflags: str = "") -> Path:
    """Build a Go program once into the cache (`go install module@version`, with `ldflags` if given)."""
    variant = f"{version}-{hashlib.sha256(ldflags.encode()).hexdigest()[:8]}" if ldflags else version
    target = bin_dir() / variant / binary
    if target.exists():
        return target
    go = require("go", "install Go 1.24+ (https://go.dev/doc/install or Debian's golang)")
    target.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "GOBIN": str(target.parent),
        "GOFLAGS": "-buildvcs=false",
        "GOMODCACHE": os.environ.get("GOMODCACHE", str(cache_dir() / "gomod")),
        "CGO_ENABLED": "0",
    }
    result = subprocess.run(
        [go, "install", *(["-ldflags", ldflags] if ldflags else []), f"{module}@{version}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not target.exists():
        raise ServiceError(f"go install {module}@{version} failed:\n{result.stderr[-3000:]}")
    return target


def helm_path() -> Path:
    """helm as its release is built (see versions.HELM_LDFLAGS), once into the cache."""
    from stockpipe_dev.localservices.versions import HELM_LDFLAGS, HELM_MODULE, HELM_VERSION

    return go_install(HELM_MODULE, HELM_VERSION, "helm", ldflags=HELM_LDFLAGS)


def coredns_path() -> Path:
    """CoreDNS, the local cluster's DNS, built once from the Go proxy."""
    from stockpipe_dev.localservices.versions import COREDNS_MODULE, COREDNS_VERSION

    return go_install(COREDNS_MODULE, COREDNS_VERSION, "coredns", ldflags="-s -w")
