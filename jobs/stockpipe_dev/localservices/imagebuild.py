"""`make images`: build the four images with the local Docker engine, from uv.lock.

The same `images/Dockerfile` serves a user with internet (bases pulled from Docker Hub, wheels from
PyPI) and this machine, where no registry answers: here the bases fall back to a Debian bookworm
root made with `debootstrap --variant=minbase` (python3.11 from Debian) and `docker import`ed, and
the wheels come from a wheelhouse downloaded on the host from uv.lock and served on loopback to the
build (`--network host`). Both are cached under ~/.cache/stockpipe, as are the engine's layers.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import http.server
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from stockpipe.paths import cache_dir
from stockpipe_dev.localservices.docker import DockerEngine, docker, docker_cli
from stockpipe_dev.localservices.process import ServiceError, port_in_use

UV_VERSION = "0.13.8"
PIP_VERSION = "25.2"
# The Dockerfile's defaults (official images, exact tags); `make images` passes them unchanged when
# they can be pulled.
PYTHON_BASE = "python:3.11.14-slim-bookworm"
AIRFLOW_BASE = "apache/airflow:3.3.2-python3.11"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = os.environ.get("STOCKPIPE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# What the debootstrapped base holds besides minbase: the interpreter, venv support, CA roots, zones.
DEBIAN_PACKAGES = (
    "python3.11",
    "python3.11-venv",
    "python3-distutils",  # python3.11-venv needs it; debootstrap's resolver misses it
    "python3-pip-whl",
    "python3-setuptools-whl",
    "ca-certificates",
    "tzdata",
    "libstdc++6",
)
LOCAL_BASE_REPO = "stockpipe/base-python"
# Removed from the runtime root after debootstrap (the images never run apt or perl); bump TRIM_VERSION
# when the trimming changes.
TRIM_PACKAGES = ("apt", "libapt-pkg6.0", "perl-base", "gpgv", "debian-archive-keyring")
TRIM_VERSION = 1
# A fixed loopback port, so the build argument (part of the layer cache key) is the same every build.
WHEELHOUSE_PORT = int(os.environ.get("STOCKPIPE_WHEELHOUSE_PORT", "19190"))
TAG = os.environ.get("STOCKPIPE_IMAGE_TAG", "dev")
CHART_TAG = "0.1.0"  # the chart's default image tag (charts/stockpipe/values.yaml), tagged too


@dataclass(frozen=True)
class Image:
    """One image: its Dockerfile target, its repository (the chart's default) and its dependency set."""

    name: str
    target: str
    repository: str
    extra: str


IMAGES = (
    Image("stockpipe", "stockpipe", "stockpipe", "stream"),
    Image("stockpipe-jobs", "jobs", "stockpipe-jobs", "jobs"),
    Image("airflow", "airflow", "stockpipe-airflow", "orchestration"),
    Image("dashboard", "dashboard", "stockpipe-dashboard", "dashboard"),
)


def image_ref(image: Image, tag: str = TAG) -> str:
    return f"{image.repository}:{tag}"


def repo_root() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "uv.lock").exists() and (parent / "images" / "Dockerfile").exists():
            return parent
    raise ServiceError("run from a stockpipe checkout: no uv.lock beside images/Dockerfile above " + str(here))


def uv_binary() -> str:
    uv = cache_dir() / f"uv-{UV_VERSION}" / "bin" / "uv"
    found = str(uv) if uv.exists() else shutil.which("uv")
    if not found:
        raise ServiceError(f"uv {UV_VERSION} not found: run `make setup` first")
    return found


def _run(argv: list[str], what: str, **kwargs: object) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise ServiceError(f"{what} failed ({result.returncode}):\n{(result.stderr or result.stdout)[-3000:]}")
    return str(result.stdout)


# ---------------------------------------------------------------- base images


def debootstrap_base(engine: DockerEngine, log: Path) -> str:
    """A python3.11 base from Debian packages, imported once; the root tarball is cached."""
    key = hashlib.sha256(f"{DEBIAN_SUITE} {DEBIAN_MIRROR} {' '.join(DEBIAN_PACKAGES)}".encode()).hexdigest()[:12]
    ref = f"{LOCAL_BASE_REPO}:3.11-{DEBIAN_SUITE}-{key}-r{TRIM_VERSION}"
    if docker(engine, "image", "inspect", ref, check=False).strip() not in ("", "[]"):
        return ref
    raw = cache_dir() / "images" / f"debootstrap-{DEBIAN_SUITE}-{key}.tar"
    if not raw.exists():
        _debootstrap(raw, log)
    tarball = raw.with_name(f"{raw.stem}-runtime{TRIM_VERSION}.tar")
    if not tarball.exists():
        _trim(raw, tarball)
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        'CMD ["python3.11"]',
    ]
    argv = [docker_cli(), "import"]
    for change in changes:
        argv += ["--change", change]
    with tarball.open("rb") as stream:
        result = subprocess.run(
            [*argv, "-", ref], stdin=stream, env=engine.env(), capture_output=True, text=True, check=False
        )
    if result.returncode != 0:
        raise ServiceError(f"docker import of {tarball} failed:\n{result.stderr[-2000:]}")
    return ref


def _debootstrap(tarball: Path, log: Path) -> None:
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(debootstrap).exists():
        raise ServiceError("no debootstrap: `make prereqs` installs it as root (apt-get install debootstrap)")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tarball.parent, prefix="rootfs-") as tmp:
        root = Path(tmp) / "root"
        with log.open("ab") as out:
            result = subprocess.run(
                [
                    debootstrap,
                    "--variant=minbase",
                    f"--include={','.join(DEBIAN_PACKAGES)}",
                    DEBIAN_SUITE,
                    str(root),
                    DEBIAN_MIRROR,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if result.returncode != 0:
            inner = root / "debootstrap" / "debootstrap.log"
            if inner.exists():
                with log.open("ab") as out:
                    out.write(inner.read_bytes()[-20000:])
            raise ServiceError(f"debootstrap failed ({result.returncode}); log: {log}")
        # Package caches and lists are not part of an image; docs go too, as in the slim images.
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
            target = root / sub
            if target.exists():
                shutil.rmtree(target)
                target.mkdir()
        partial_tar = tarball.with_suffix(".partial")
        _run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial_tar), "."], "tar of the base root")
        os.replace(partial_tar, tarball)


def _trim(raw: Path, tarball: Path) -> None:
    """A runtime root: no package manager or perl (nothing installs at run time), no translations, and
    no byte code of the standard library (compiled under PYTHONPYCACHEPREFIX when first imported)."""
    with tempfile.TemporaryDirectory(dir=tarball.parent, prefix="trim-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        _run(["tar", "-C", str(root), "--numeric-owner", "-xf", str(raw)], "untar of the base root")
        _run(
            ["chroot", str(root), "dpkg", "--purge", "--force-remove-essential", "--force-depends", *TRIM_PACKAGES],
            "dpkg --purge in the base root",
        )
        for pattern in (
            "usr/share/locale/*",
            "usr/share/info",
            "usr/share/lintian",
            "var/log/*",
            "var/cache/debconf/*-old",
        ):
            for path in root.glob(pattern):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        for cache in root.glob("usr/lib/python3*/**/__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
        partial_tar = tarball.with_suffix(".partial")
        _run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial_tar), "."], "tar of the base root")
        os.replace(partial_tar, tarball)


def pullable(engine: DockerEngine, ref: str) -> bool:
    """True when the image is present or can be pulled (no registry here: False within the timeout)."""
    if docker(engine, "image", "inspect", ref, check=False).strip() not in ("", "[]"):
        return True
    if os.environ.get("STOCKPIPE_IMAGES_OFFLINE") == "1":
        return False
    try:
        docker(engine, "pull", "--quiet", ref, timeout=120)
    except (ServiceError, subprocess.TimeoutExpired):
        return False
    return True


# ---------------------------------------------------------------- wheelhouse


def wheelhouse_dir() -> Path:
    return cache_dir() / "wheelhouse"


def build_wheelhouse(root: Path, log: Path) -> Path:
    """Every wheel of uv.lock's runtime sets (plus uv itself) for Linux/CPython 3.11, cached by content."""
    requirements = _run(
        [uv_binary(), "export", "--frozen", "--no-dev", "--no-emit-project", "--no-header", "--all-extras"],
        "uv export",
        cwd=root,
    )
    house = wheelhouse_dir()
    house.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(requirements.encode()).hexdigest()[:16]
    marker = house / f".complete-{digest}"
    if marker.exists():
        return house
    machine = platform.machine()
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in range(36, 4, -1)]
    platforms += [f"manylinux2014_{machine}", f"manylinux2010_{machine}", f"manylinux1_{machine}", f"linux_{machine}"]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
        req.write(requirements)
    target = [
        "--only-binary=:all:",
        "--python-version=3.11",
        "--implementation=cp",
        *[f"--platform={p}" for p in platforms],
        "--no-deps",
        "--dest",
        str(house),
    ]
    # pip (pinned, run by uv: a uv-made venv has none) downloads; uv has no download command.
    pip = [
        uv_binary(),
        "tool",
        "run",
        "--from",
        f"pip=={PIP_VERSION}",
        "pip",
        "download",
        "--disable-pip-version-check",
    ]
    pip += target
    env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}
    env.setdefault("UV_CACHE_DIR", str(cache_dir() / "uv"))
    try:
        with log.open("ab") as out:
            # The lock's wheels with its hashes (checked again in the build); uv's own wheel (not in the
            # lock) pinned by version.
            for argv in ([*pip, "-r", req.name], [*pip, f"uv=={UV_VERSION}"]):
                result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
                if result.returncode != 0:
                    raise ServiceError(f"wheelhouse download failed ({result.returncode}); log: {log}")
    finally:
        os.unlink(req.name)
    marker.write_text(digest + "\n")
    return house


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@contextmanager
def serve_wheelhouse(house: Path) -> Iterator[str]:
    """The wheelhouse as a flat HTML index on 127.0.0.1:WHEELHOUSE_PORT for the duration of the builds."""
    if port_in_use(WHEELHOUSE_PORT):
        raise ServiceError(
            f"port {WHEELHOUSE_PORT} (the wheelhouse's) is taken: another `make images` running? "
            "Set STOCKPIPE_WHEELHOUSE_PORT to another free port."
        )
    handler = partial(_QuietHandler, directory=str(house))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", WHEELHOUSE_PORT), handler)
    thread = threading.Thread(target=server.serve_forever, name="wheelhouse", daemon=True)
    thread.start()
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{WHEELHOUSE_PORT}/", timeout=5).close()
        yield f"http://127.0.0.1:{WHEELHOUSE_PORT}/"
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- builds


@dataclass
class BuildResult:
    image: Image
    ref: str
    seconds: float


def git_revision(root: Path) -> str:
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False)
    return result.stdout.strip() or "unknown"


def build_image(
    engine: DockerEngine,
    image: Image,
    root: Path,
    build_args: dict[str, str],
    log: Path,
    no_cache: bool = False,
) -> BuildResult:
    argv = [docker_cli(), "build", "--network=host", "-f", "images/Dockerfile", "--target", image.target]
    for key, value in build_args.items():
        argv += ["--build-arg", f"{key}={value}"]
    argv += ["-t", image_ref(image), "-t", image_ref(image, CHART_TAG)]
    if no_cache:
        argv.append("--no-cache")
    argv.append(".")
    started = time.monotonic()
    with log.open("ab") as out:
        out.write(f"\n==== {' '.join(argv)}\n".encode())
        out.flush()
        result = subprocess.run(argv, cwd=root, env=engine.env(), stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise ServiceError(f"docker build of {image.name} failed ({result.returncode}); log {log}:\n{tail}")
    return BuildResult(image, image_ref(image), time.monotonic() - started)


def resolve_bases(engine: DockerEngine, log: Path) -> dict[str, str]:
    """The Dockerfile's pinned bases where they can be pulled, else the debootstrapped base for both."""
    python_ok = pullable(engine, PYTHON_BASE)
    airflow_ok = pullable(engine, AIRFLOW_BASE)
    if python_ok and airflow_ok:
        return {}
    local = debootstrap_base(engine, log)
    args = {}
    if not python_ok:
        args["PYTHON_BASE"] = local
    if not airflow_ok:
        args["AIRFLOW_BASE"] = local
    return args


def build_all(
    engine: DockerEngine, names: list[str] | None = None, no_cache: bool = False, log: Path | None = None
) -> list[BuildResult]:
    root = repo_root()
    log = log or cache_dir() / "images" / "build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    selected = [image for image in IMAGES if not names or image.name in names]
    unknown = set(names or []) - {image.name for image in IMAGES}
    if unknown:
        raise ServiceError(f"unknown image(s) {sorted(unknown)}; known: {[i.name for i in IMAGES]}")
    # One build at a time on this machine (parallel test sessions, `make images` beside them): they share
    # the engine, the base, the wheelhouse and its port.
    with (log.parent / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        args = resolve_bases(engine, log)
        house = build_wheelhouse(root, log)
        args["REVISION"] = git_revision(root)
        results = []
        with serve_wheelhouse(house) as url:
            args["WHEELHOUSE_URL"] = url
            for image in selected:
                results.append(build_image(engine, image, root, args, log, no_cache=no_cache))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stockpipe_dev.localservices.imagebuild", description=__doc__)
    parser.add_argument("images", nargs="*", help=f"default: all of {[i.name for i in IMAGES]}")
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument(
        "--if-engine",
        action="store_true",
        help="build only where a Docker engine runs or can be started (dockerd installed, root); else say why",
    )
    parser.add_argument("--stop-engine", action="store_true", help="stop the engine again if this run started it")
    args = parser.parse_args(argv)
    engine = DockerEngine.default()
    if args.if_engine and not engine.answers() and (shutil.which("dockerd") is None or os.geteuid() != 0):
        print("no Docker engine here (dockerd not installed, or not root): images not built")
        return 0
    record = engine.start()
    if record:
        print(
            f"started dockerd (pid {record.pid}) at {engine.host}; "
            "stop: python -m stockpipe_dev.localservices.docker down"
        )
    try:
        for result in build_all(engine, args.images, no_cache=args.no_cache):
            print(json.dumps({"image": result.image.name, "ref": result.ref, "build_s": round(result.seconds, 1)}))
    finally:
        stopped = args.stop_engine and record is not None and engine.stop(record)
    if stopped:
        return 0
    print(f"images are in the engine at {engine.host} (export DOCKER_HOST={engine.host})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
