"""checkov (offline, so without severities: every failed check counts) finds nothing in the rendered manifests
of every value set, except the checks skipped below, each with its reason. Object-specific skips live in the
templates as `checkov.io/skipN` annotations, with their reason beside them too."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.chart import charttools

SKIPPED = {
    "CKV_K8S_15": "pull policy is a value (IfNotPresent by default): tags are pinned and `latest` is refused by "
    "the schema, and locally built images (kind, the node test) are loaded with Never, not pulled",
    "CKV_K8S_43": "images are pinned by tag (the schema refuses `latest`); images built here have no registry digest",
}


def test_checkov_finds_nothing(helm_bin: Path, chart: Path, checkov_bin: Path, tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for name, values in charttools.VALUE_SETS.items():
        result = charttools.helm(helm_bin, charttools.template_args(chart, ["-f", str(values)]), check=True)
        (manifests / f"{name}.yaml").write_text(result.stdout, encoding="utf-8")
    result = subprocess.run(
        [
            str(checkov_bin),
            "--directory",
            str(manifests),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--quiet",
            "--compact",
            "--output",
            "json",
            "--skip-check",
            ",".join(SKIPPED),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.stdout.strip(), f"checkov printed nothing:\n{result.stderr[-3000:]}"
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{check['check_id']} {check['check_name']}: {check['resource']} ({check['file_path']})"
        for report in reports
        for check in report["results"]["failed_checks"]
    ]
    passed = sum(report["summary"]["passed"] for report in reports)
    assert passed > 100, f"checkov checked too little ({passed} passed checks): {result.stderr[-2000:]}"
    assert not failed, "\n".join(failed)
