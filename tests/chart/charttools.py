"""Render and lint the Helm chart offline; find the operators' CRDs; check rendered objects against schemas.

The chart's upstream dependencies (Airflow, Strimzi and MinIO operator charts) live in chart repositories
this machine cannot reach. `helm template` refuses a chart whose declared dependencies are missing from
`charts/`, even disabled ones, so `offline_chart` copies the chart and puts an empty stand-in chart of the
declared name and version in their place: nothing of theirs renders, everything of ours does.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from stockpipe.paths import cache_dir
from stockpipe_dev.localservices.toolchain import helm_path

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "stockpipe"
KUBE_VERSION = "1.34.0"
NAMESPACE = "stockpipe"
RELEASE = "sp"
VALUE_SETS = {path.name.removesuffix("-values.yaml"): path for path in sorted((CHART / "ci").glob("*-values.yaml"))}

# Where the operators' CRDs come from when ../shared/crds is absent (pinned releases, cached).
CRDS_DIR_VARIABLE = "STOCKPIPE_CRDS_DIR"
STRIMZI_VERSION = "1.2.0"
MINIO_OPERATOR_VERSION = "7.1.1"
CRD_SOURCES = {
    f"strimzi-{STRIMZI_VERSION}/strimzi-crds.yaml": (
        f"https://github.com/strimzi/strimzi-kafka-operator/releases/download/{STRIMZI_VERSION}/"
        f"strimzi-crds-{STRIMZI_VERSION}.yaml"
    ),
    f"minio-operator-{MINIO_OPERATOR_VERSION}/minio.min.io_tenants.yaml": (
        f"https://raw.githubusercontent.com/minio/operator/v{MINIO_OPERATOR_VERSION}/resources/base/crds/"
        "minio.min.io_tenants.yaml"
    ),
}


def helm_binary() -> Path:
    """helm, built once with `go install` into the cache (what `make setup` does)."""
    return helm_path()


def offline_chart(dest: Path) -> Path:
    """A copy of the chart with an empty stand-in for each declared dependency (see the module doc)."""
    chart = dest / CHART.name
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("charts", "*.tgz", "Chart.lock"))
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    for dep in meta.get("dependencies", []):
        stand_in = chart / "charts" / dep.get("alias", dep["name"])
        stand_in.mkdir(parents=True)
        version = str(dep["version"]).lstrip("~^=>< ")
        (stand_in / "Chart.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v2",
                    "name": dep["name"],
                    "version": version,
                    "description": f"offline stand-in for {dep['repository']} (renders nothing)",
                }
            ),
            encoding="utf-8",
        )
    return chart


def helm(
    binary: Path, args: Sequence[str], *, check: bool = False, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    home = cache_dir() / "helm-home"
    home.mkdir(parents=True, exist_ok=True)
    environment = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        **(env or {}),
    }
    result = subprocess.run(
        [str(binary), *args], capture_output=True, text=True, check=False, env=environment, timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


def template_args(chart: Path, extra: Sequence[str] = ()) -> list[str]:
    return ["template", RELEASE, str(chart), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION, *extra]


def lint_args(chart: Path, extra: Sequence[str] = ()) -> list[str]:
    return ["lint", str(chart), "--strict", "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION, *extra]


def render(binary: Path, chart: Path, extra: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every object `helm template` renders (hooks and tests included), in order."""
    result = helm(binary, template_args(chart, extra), check=True)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


# -- CRDs and schemas -------------------------------------------------------------------------------------


def crds_dir() -> Path:
    """The operators' CRDs: $STOCKPIPE_CRDS_DIR, else ../shared/crds, else the pinned releases (cached)."""
    if os.environ.get(CRDS_DIR_VARIABLE):
        return Path(os.environ[CRDS_DIR_VARIABLE])
    shared = REPO.parent / "shared" / "crds"
    if shared.is_dir():
        return shared
    target = cache_dir() / "crds"
    for relative, url in CRD_SOURCES.items():
        path = target / relative
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (a pinned https URL)
                data = response.read()
            partial = path.with_suffix(".partial")
            partial.write_bytes(data)
            partial.replace(path)
    return target


def load_crds(*directories: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(group, version, kind) -> openAPIV3Schema of every served version of every CRD under the directories."""
    schemas: dict[tuple[str, str, str], dict[str, Any]] = {}
    for directory in directories:
        for path in sorted(directory.rglob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                for version in spec["versions"]:
                    if version.get("served", True):
                        key = (spec["group"], version["name"], spec["names"]["kind"])
                        schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The CRD schema with unknown fields refused: the API server would silently prune them (a typo lost)."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    # metadata is the API server's, typed loosely in every CRD.
    schema.get("properties", {}).get("metadata", {}).pop("additionalProperties", None)
    return schema


def crd_errors(doc: dict[str, Any], schemas: dict[tuple[str, str, str], dict[str, Any]]) -> list[str]:
    group, _, version = doc["apiVersion"].rpartition("/")
    key = (group, version, doc["kind"])
    if key not in schemas:
        return [f"no CRD serves {doc['apiVersion']} {doc['kind']}"]
    validator = jsonschema.Draft7Validator(strict_schema(schemas[key]))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(doc)]


def pod_specs(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, pod spec) of every pod an object makes, including the job pods' template in a ConfigMap."""
    name = f"{doc['kind']}/{doc['metadata']['name']}"
    if doc["kind"] == "Pod":
        yield name, doc["spec"]
    elif doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        yield name, doc["spec"]["template"]["spec"]
    elif doc["kind"] == "ConfigMap":
        for key, text in (doc.get("data") or {}).items():
            if key.endswith(".yaml"):
                inner = yaml.safe_load(text)
                if isinstance(inner, dict) and inner.get("kind") == "Pod":
                    yield f"{name}[{key}]", inner["spec"]
