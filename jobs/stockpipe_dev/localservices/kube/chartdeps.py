"""The chart's dependencies in `charts/stockpipe/charts/` where `helm dependency build` cannot fetch them.

helm refuses to install or template a chart whose declared dependencies are missing from `charts/`,
even those switched off, so skaffold's helm deployer (which installs `charts/stockpipe` itself) needs
all three. A user's `helm dependency build` downloads them. Here, with no chart repository reachable:
- the Strimzi and MinIO operator charts are packaged from their vendored upstream sources (the same
  charts, at the versions Chart.yaml pins);
- the official Airflow chart cannot be had (RECIPES.md): in its place goes a chart named `airflow`
  whose only template fails, naming the value to set. With `airflow.enabled: false` (every value set
  this machine installs) helm drops it before rendering; switched on, it stops the install instead of
  leaving Airflow out silently.
Each package is written once; a package helm (or the user) put there is never replaced.
"""

from __future__ import annotations

import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import yaml

from stockpipe_dev.localservices.process import ServiceError
from stockpipe_dev.localservices.toolchain import helm_path
from stockpipe_dev.localservices.vendor import vendored

# Dependency name (as Chart.yaml declares it) -> (vendored source, the chart's folder inside it).
VENDORED_CHARTS = {
    "strimzi-kafka-operator": (
        "strimzi-kafka-operator-1.2.0-src.tar.xz",
        "strimzi-kafka-operator-1.2.0/packaging/helm-charts/helm3/strimzi-kafka-operator",
    ),
    "operator": ("minio-operator-7.1.1-src.tar.xz", "minio-operator-7.1.1/helm/operator"),
}
_UNAVAILABLE = (
    '{{- fail "the official Airflow chart is not on this machine (no chart repository is reachable): set '
    "airflow.enabled=false, or run `helm dependency build charts/stockpipe` where https://airflow.apache.org "
    'answers" }}\n'
)


def declared(chart: Path) -> dict[str, str]:
    """{dependency name: version constraint} of the chart's Chart.yaml."""
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    return {dep["name"]: str(dep["version"]) for dep in meta.get("dependencies", [])}


def present(chart: Path) -> set[str]:
    """Names of the dependency packages in charts/ (from each package's own Chart.yaml)."""
    names = set()
    for package in (chart / "charts").glob("*.tgz"):
        with tarfile.open(package) as archive:
            top = [m for m in archive.getmembers() if m.name.count("/") == 1 and m.name.endswith("/Chart.yaml")]
            if top and (handle := archive.extractfile(top[0])):
                names.add(yaml.safe_load(handle.read())["name"])
    return names


def ensure_chart_dependencies(chart: Path, echo: Callable[[str], None] = print) -> list[Path]:
    """Write the missing dependency packages into `chart`/charts; returns the packages written."""
    wanted = declared(chart)
    missing = [name for name in wanted if name not in present(chart)]
    if not missing:
        return []
    helm = helm_path()
    (chart / "charts").mkdir(exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(prefix="chartdeps-") as scratch:
        work = Path(scratch)
        for name in missing:
            version = wanted[name].lstrip("~^=")
            if name in VENDORED_CHARTS:
                source, folder = VENDORED_CHARTS[name]
                with tarfile.open(vendored(source)) as archive:
                    members = [m for m in archive.getmembers() if m.name == folder or m.name.startswith(folder + "/")]
                    archive.extractall(work, members=members, filter="data")
                unpacked = work / folder
            else:
                unpacked = _unavailable_chart(work, name, version)
            written.append(_package(helm, unpacked, version, chart / "charts"))
            echo(f"chart dependency {name} {version}: {written[-1]}")
    return written


def _unavailable_chart(work: Path, name: str, version: str) -> Path:
    if name != "airflow":
        raise ServiceError(f"no source for the chart dependency {name!r} here: run `helm dependency build`")
    folder = work / "unavailable" / name
    (folder / "templates").mkdir(parents=True)
    (folder / "Chart.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v2",
        "name": name,
        "version": version,
        "description": "Stands in for a chart this machine cannot fetch: fails if rendered (switch it off).",
    }))  # fmt: skip
    (folder / "templates" / "unavailable.yaml").write_text(_UNAVAILABLE)
    return folder


def _package(helm: Path, unpacked: Path, version: str, destination: Path) -> Path:
    argv = [str(helm), "package", str(unpacked), "--version", version, "--app-version", version,
            "--destination", str(destination)]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServiceError(f"helm package {unpacked}: {result.stderr.strip()}")
    return Path(result.stdout.strip().rsplit(": ", 1)[-1])
