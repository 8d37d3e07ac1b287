"""kind-config.yaml through kind's own loader; skaffold.yaml against its schema and the chart's values.

skaffold itself (built from its vendored source, minutes) runs in `make e2e` (tests/cluster/test_skaffold.py).
Here, in seconds, each profile is applied to the file as skaffold applies it (its fields over the
config, then its JSON patches), and what `skaffold render` does with the result is done by hand: fill
setValueTemplates from the artifacts' IMAGE_REPO_/IMAGE_TAG_ variables and `helm template` the chart.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonpatch
import jsonschema
import pytest
import yaml

from stockpipe.paths import cache_dir
from stockpipe_dev.localservices.kube.tools import chart_without_dependencies
from stockpipe_dev.localservices.toolchain import helm_path

REPO = Path(__file__).resolve().parents[2]
KIND_VERSION = "v0.30.0"
SKAFFOLD_SCHEMA = Path(os.environ.get("STOCKPIPE_SHARED_SCHEMAS", REPO.parent / "shared" / "schemas"))
CHART_IMAGES = {  # skaffold artifact -> the chart's image values
    "stockpipe": "images.stockpipe",
    "stockpipe-jobs": "images.jobs",
    "stockpipe-dashboard": "images.dashboard",
    "stockpipe-airflow": "airflow.images.airflow",
}


@pytest.fixture(scope="module")
def kindcheck() -> Path:
    """tests/images/kindcheck built once: kind's internal config loader (encoding.Load + Validate)."""
    target = cache_dir() / "bin" / f"kindcheck-{KIND_VERSION}"
    if not target.exists():
        env = {**os.environ, "GOMODCACHE": os.environ.get("GOMODCACHE", str(cache_dir() / "gomod")), "GOFLAGS": ""}
        result = subprocess.run(
            ["go", "build", "-o", str(target), "."],
            cwd=Path(__file__).parent / "kindcheck",
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
    return target


def test_kind_config_loads_with_kinds_own_loader(kindcheck: Path) -> None:
    result = subprocess.run(
        [str(kindcheck), str(REPO / "kind-config.yaml")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    cluster = json.loads(result.stdout)
    assert cluster["Name"] == "stockpipe"
    roles = [node["Role"] for node in cluster["Nodes"]]
    assert roles == ["control-plane", "worker"]
    control = cluster["Nodes"][0]
    assert control["Labels"] == {"ingress-ready": "true"}
    assert sorted((m["ContainerPort"], m["HostPort"]) for m in control["ExtraPortMappings"]) == [(80, 80), (443, 443)]
    assert all("@sha256:" in node["Image"] for node in cluster["Nodes"])  # node images pinned


def test_kinds_loader_refuses_a_broken_config(kindcheck: Path, tmp_path: Path) -> None:
    broken = tmp_path / "kind.yaml"
    broken.write_text((REPO / "kind-config.yaml").read_text().replace("role: worker", "role: wroker"))
    result = subprocess.run([str(kindcheck), str(broken)], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "wroker" in result.stderr


def skaffold(*profiles: str) -> dict[str, Any]:
    """skaffold.yaml with `profiles` applied in the file's order, as skaffold applies them."""
    data: dict[str, Any] = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    for profile in data.get("profiles", []):
        if profile["name"] in profiles:
            data = {**data, **{k: v for k, v in profile.items() if k in ("build", "deploy", "portForward")}}
            data = jsonpatch.apply_patch(data, profile.get("patches", []))
    return data


def test_skaffold_yaml_validates_against_the_v4beta14_schema() -> None:
    schema_file = SKAFFOLD_SCHEMA / "skaffold-v4beta14.json"
    if not schema_file.exists():
        pytest.skip(f"the skaffold schema is not at {schema_file} (set STOCKPIPE_SHARED_SCHEMAS)")
    config = skaffold()
    assert config["apiVersion"] == "skaffold/v4beta14"
    jsonschema.validate(config, json.loads(schema_file.read_text()))
    bad = {**config, "build": {**config["build"], "artefacts": []}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json.loads(schema_file.read_text()))


def template_var(name: str) -> str:
    return re.sub(r"[-/.:]", "_", name)


def render_value_templates(templates: dict[str, str], tags: dict[str, str]) -> dict[str, str]:
    """What skaffold does with setValueTemplates: each artifact's IMAGE_REPO_/IMAGE_TAG_ (names with _)."""
    env = {}
    for image, tag in tags.items():
        env[f"IMAGE_REPO_{template_var(image)}"] = image
        env[f"IMAGE_TAG_{template_var(image)}"] = tag

    def fill(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            assert match.group(1) in env, f"{match.group(1)} is not a variable skaffold sets"
            return env[match.group(1)]

        return re.sub(r"\{\{\s*\.(\w+)\s*\}\}", one, text)

    return {key: fill(value) for key, value in templates.items()}


# Each profile's artifacts: the local node's value set runs no Airflow and no bronze loader.
PROFILE_ARTIFACTS = {
    None: set(CHART_IMAGES),
    "kind": set(CHART_IMAGES),
    "local-node": {"stockpipe", "stockpipe-dashboard"},
}


@pytest.mark.parametrize("profile", [None, "kind", "local-node"])
def test_skaffold_deploy_renders_the_chart_with_each_artifacts_image(profile: str | None, tmp_path: Path) -> None:
    config = skaffold(*([profile] if profile else []), "dev-sync")
    artifacts = [a["image"] for a in config["build"]["artifacts"]]
    assert set(artifacts) == PROFILE_ARTIFACTS[profile]
    for artifact in config["build"]["artifacts"]:
        assert artifact["docker"]["dockerfile"] == "images/Dockerfile"
        assert any(rule["src"].endswith(".py") for rule in artifact["sync"]["manual"])
    (release,) = config["deploy"]["helm"]["releases"]
    assert release["chartPath"] == "charts/stockpipe"
    assert release["skipBuildDependencies"] is True  # `helm dependency build` once, not on every run
    assert release["setValues"] == {"development.syncCode": "true"}  # what `skaffold dev` syncs into
    tags = {image: f"t-{i}" for i, image in enumerate(artifacts)}
    values = render_value_templates(release["setValueTemplates"], tags)
    for image, key in CHART_IMAGES.items():
        if image in tags:
            assert values[f"{key}.repository"] == image
            assert values[f"{key}.tag"] == tags[image]
        else:
            assert f"{key}.repository" not in values
    # The chart's own schema checks each value; Airflow (a subchart not fetchable here) is off.
    chart = chart_without_dependencies(REPO / "charts" / "stockpipe", tmp_path)
    offline = {
        "airflow.enabled": "false",
        "strimzi-kafka-operator.enabled": "false",
        "minio-operator.enabled": "false",
        "kafka.external.enabled": "true",
        "kafka.external.bootstrapServers": "kafka.example.internal:9092",
        "lake.mode": "external",
        "lake.endpoint": "http://s3.example.internal:9000",
    }
    sets = {**{k: str(v) for k, v in release.get("setValues", {}).items()}, **values, **offline}
    helm = str(helm_path())
    argv = [helm, "template", "stockpipe", str(chart), "--kube-version", "1.34.0"]
    for values_file in release.get("valuesFiles", []):
        argv += ["-f", str(REPO / values_file)]
    for key, value in sets.items():
        argv += ["--set-string" if key.endswith(".tag") else "--set", f"{key}={value}"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    images = set(re.findall(r"^\s*image: \"?([^\"\s]+)\"?$", result.stdout, flags=re.MULTILINE))
    assert f"stockpipe:{tags['stockpipe']}" in images
    assert f"stockpipe-dashboard:{tags['stockpipe-dashboard']}" in images
    if "stockpipe-jobs" in tags:
        assert f"stockpipe-jobs:{tags['stockpipe-jobs']}" in result.stdout  # the job pods' image, in a ConfigMap
    # skaffold dev's development mode: writable code seeded by an init container, watchfiles around the workload.
    assert "seed-code" in result.stdout
    assert "watchfiles" in result.stdout
