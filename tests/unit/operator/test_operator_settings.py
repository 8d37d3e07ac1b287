"""Operator settings: environment, validation, namespace resolution, and the kopf settings it runs with."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockpipe.operator.main import FINALIZER, build_kopf_settings
from stockpipe.operator.settings import OperatorSettings
from stockpipe.settings import ConfigError, load_settings

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NAMESPACE", "CONFIGMAP_NAME", "RESYNC_SECONDS", "LIVENESS_PORT", "LIVENESS_HOST", "SECRETS_DIR"):
        monkeypatch.delenv(f"STOCKPIPE_{name}", raising=False)


def test_defaults() -> None:
    settings = load_settings(OperatorSettings)
    assert settings.configmap_name == "stockpipe-watchlist"
    assert settings.resync_seconds == 60
    assert settings.liveness_endpoint == "http://0.0.0.0:8080/healthz"


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKPIPE_NAMESPACE", "markets")
    monkeypatch.setenv("STOCKPIPE_CONFIGMAP_NAME", "producer-watchlist")
    monkeypatch.setenv("STOCKPIPE_RESYNC_SECONDS", "2.5")
    monkeypatch.setenv("STOCKPIPE_LIVENESS_PORT", "0")
    settings = load_settings(OperatorSettings)
    assert (settings.namespace, settings.configmap_name, settings.resync_seconds) == (
        "markets",
        "producer-watchlist",
        2.5,
    )
    assert settings.liveness_endpoint is None  # port 0: no liveness endpoint


@pytest.mark.parametrize(
    ("field", "value"),
    [("configmap_name", "Not_A_Name"), ("resync_seconds", 0), ("liveness_port", 70000)],
)
def test_invalid_values_fail_at_start_with_the_field_named(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        load_settings(OperatorSettings, **{field: value})


def test_namespace_comes_from_settings_then_service_account_then_default(tmp_path: Path) -> None:
    namespace_file = tmp_path / "namespace"
    assert OperatorSettings(namespace="explicit").resolved_namespace(namespace_file) == "explicit"
    assert OperatorSettings().resolved_namespace(namespace_file) == "default"
    namespace_file.write_text("stockpipe\n", encoding="utf-8")
    assert OperatorSettings().resolved_namespace(namespace_file) == "stockpipe"


def test_kopf_runs_standalone_without_cluster_scanning_and_with_our_finalizer() -> None:
    settings = build_kopf_settings()
    assert settings.peering.standalone is True
    assert settings.scanning.disabled is True  # no ClusterRole needed to watch CRDs
    assert settings.persistence.finalizer == FINALIZER == "stockpipe.io/watchlist-operator"
    assert settings.posting.reporting_component == "stockpipe-operator"
