"""The chart's README is helm-docs' rendering of values.yaml (and README.md.gotmpl) as they are now."""

from __future__ import annotations

import subprocess

from stockpipe_dev.localservices.toolchain import go_install
from stockpipe_dev.localservices.versions import HELM_DOCS_MODULE, HELM_DOCS_VERSION
from tests.chart import charttools

# The command README.md.gotmpl tells a maintainer to run (from the repository's root).
ARGS = ["--chart-search-root", "charts/stockpipe", "--sort-values-order", "file", "--log-level", "error"]


def test_the_chart_readme_is_current() -> None:
    helm_docs = go_install(HELM_DOCS_MODULE, HELM_DOCS_VERSION, "helm-docs")
    result = subprocess.run(
        [str(helm_docs), *ARGS, "--dry-run"],
        cwd=charttools.REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    readme = (charttools.CHART / "README.md").read_text(encoding="utf-8")
    assert result.stdout.strip() == readme.strip(), (
        f"charts/stockpipe/README.md is stale: run {helm_docs} {' '.join(ARGS[:-2])} from the repository's root"
    )
    assert f"bin/{HELM_DOCS_VERSION}/helm-docs" in (charttools.CHART / "README.md.gotmpl").read_text(encoding="utf-8")
