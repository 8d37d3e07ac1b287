"""The four images, built once per session with the project's Docker engine (`make images`' code)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from stockpipe_dev.localservices.docker import DockerEngine, docker_cli
from stockpipe_dev.localservices.imagebuild import IMAGES, build_all, image_ref
from stockpipe_dev.localservices.process import ServiceError

# The local control plane of tests/cluster, for the operator image's test (one per session, started only
# when a test here asks for it).
from tests.cluster.conftest import chart, cluster, control_plane, helm, kubectl  # noqa: F401


@dataclass(frozen=True)
class Images:
    """The built images by name (stockpipe, stockpipe-jobs, airflow, dashboard) and how to run them."""

    engine: DockerEngine
    refs: dict[str, str]
    # Byte code the containers compile (PYTHONPYCACHEPREFIX=/tmp/.pycache), kept per image across the
    # session's runs as a pod's emptyDir keeps it across restarts: only the first run pays the compile.
    pycache: Path

    def run(
        self,
        image: str,
        args: Sequence[str],
        *,
        entrypoint: str | None = None,
        env: Mapping[str, str] | None = None,
        secret_env: Mapping[str, str] | None = None,
        volumes: Sequence[str] = (),
        network: str = "none",
        detach: bool = False,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """`docker run` as the image's own user with a read-only root filesystem and a tmpfs /tmp.

        secret_env values reach the container through the client's environment (`-e NAME`), never argv.
        """
        argv = [docker_cli(), "run", "--read-only", "--tmpfs", "/tmp:rw,exec,size=512m", f"--network={network}"]
        argv += ["--cap-drop=ALL", "--security-opt=no-new-privileges"]
        argv += ["--detach"] if detach else ["--rm"]
        if entrypoint:
            argv += ["--entrypoint", entrypoint]
        for key, value in (env or {}).items():
            argv += ["-e", f"{key}={value}"]
        for key in secret_env or {}:
            argv += ["-e", key]
        cache = self.pycache / image
        if not cache.exists():
            cache.mkdir(parents=True)
            cache.chmod(0o777)  # the image's user, whichever uid it is
        for volume in (*volumes, f"{cache}:/tmp/.pycache"):
            argv += ["-v", volume]
        argv += [self.refs[image], *args]
        return subprocess.run(
            argv,
            env={**self.engine.env(), **(secret_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def docker(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [docker_cli(), *args], env=self.engine.env(), capture_output=True, text=True, timeout=timeout, check=False
        )

    def inspect(self, image: str) -> dict[str, object]:
        result = self.docker("image", "inspect", self.refs[image])
        assert result.returncode == 0, result.stderr
        data: list[dict[str, object]] = json.loads(result.stdout)
        return data[0]


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    engine = DockerEngine.default()
    if not engine.answers() and (shutil.which("dockerd") is None or os.geteuid() != 0):
        pytest.skip("no Docker engine: dockerd (Debian docker.io) is not installed or this is not root")
    try:
        record = engine.start()
    except ServiceError as exc:
        pytest.skip(f"no Docker engine could be started here: {str(exc).splitlines()[0]}")
    yield engine
    if record is not None:
        engine.stop(record)


@pytest.fixture(scope="session")
def images(docker_engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Images:
    """All four images, built (or found up to date in the engine's layer cache) from this checkout."""
    build_all(docker_engine)
    refs = {image.name: image_ref(image) for image in IMAGES}
    return Images(docker_engine, refs, tmp_path_factory.mktemp("pycache"))
