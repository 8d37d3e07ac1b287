"""Chart fixtures: helm (built once), an offline copy of the chart, the operators' CRDs, checkov (isolated)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from stockpipe.paths import cache_dir
from tests.chart import charttools

CHECKOV_VERSION = "3.3.30"
UV_VERSION = "0.13.8"


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    return charttools.helm_binary()


@pytest.fixture(scope="session")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return charttools.offline_chart(tmp_path_factory.mktemp("chart"))


@pytest.fixture(scope="session")
def crd_schemas() -> dict[tuple[str, str, str], dict[str, object]]:
    try:
        directory = charttools.crds_dir()
    except OSError as exc:  # no ../shared/crds and no way to the operators' releases
        pytest.skip(f"operator CRDs unavailable: {exc}")
    return charttools.load_crds(directory, charttools.CHART / "crds")


@pytest.fixture(scope="session")
def checkov_bin() -> Path:
    """checkov in its own uv tool environment under the cache, never in the project's venv (its pins clash)."""
    home = cache_dir() / "tools" / f"checkov-{CHECKOV_VERSION}"
    binary = home / "bin" / "checkov"
    if binary.exists():
        return binary
    uv = cache_dir() / f"uv-{UV_VERSION}" / "bin" / "uv"
    env = {
        **os.environ,
        "UV_TOOL_DIR": str(home),
        "UV_TOOL_BIN_DIR": str(home / "bin"),
        "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(cache_dir() / "uv")),
    }
    result = subprocess.run(
        [str(uv), "tool", "install", "--python", "3.11", f"checkov=={CHECKOV_VERSION}"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, f"installing checkov failed:\n{result.stderr[-3000:]}"
    assert binary.exists(), f"uv installed checkov elsewhere:\n{result.stderr[-3000:]}"
    return binary
