"""`stockpipe dashboard`: settings fail at start with the field named; imports stay within the dashboard's set."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stockpipe.cli import app
from stockpipe.dashboard.cli import streamlit_argv
from stockpipe.dashboard.settings import DashboardSettings
from stockpipe.settings import ConfigError, load_settings


@pytest.mark.usefixtures("no_outside_settings")
def test_snowflake_without_credentials_fails_with_the_fields_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKPIPE_WAREHOUSE__TARGET", "snowflake")
    with pytest.raises(ConfigError, match=r"warehouse\.snowflake\.account, user"):
        load_settings(DashboardSettings)
    monkeypatch.setenv("STOCKPIPE_WAREHOUSE__SNOWFLAKE__ACCOUNT", "org-acct")
    monkeypatch.setenv("STOCKPIPE_WAREHOUSE__SNOWFLAKE__USER", "dash")
    with pytest.raises(ConfigError, match="private_key_file"):
        load_settings(DashboardSettings)
    monkeypatch.setenv("STOCKPIPE_WAREHOUSE__SNOWFLAKE__PRIVATE_KEY_FILE", "/nonexistent/key.p8")
    with pytest.raises(ConfigError, match="is not a file"):
        load_settings(DashboardSettings)


@pytest.mark.usefixtures("no_outside_settings")
def test_the_command_refuses_a_bad_setting_before_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKPIPE_DASHBOARD__CACHE_TTL_S", "-1")
    result = CliRunner().invoke(app, ["dashboard", "--port", "8501", "--address", "0.0.0.0"])
    assert result.exit_code == 2
    assert "dashboard.cache_ttl_s" in result.output


def test_the_chart_s_command_line_is_served_headless() -> None:
    argv = streamlit_argv(8501, "0.0.0.0")
    assert argv[1:4] == ["-m", "streamlit", "run"]
    assert Path(argv[4]).name == "app.py"
    options = dict(zip(argv[5::2], argv[6::2], strict=True))
    assert options["--server.port"] == "8501"
    assert options["--server.address"] == "0.0.0.0"
    assert options["--server.headless"] == "true"
    assert options["--browser.gatherUsageStats"] == "false"


def test_the_dashboard_imports_nothing_outside_its_dependency_set() -> None:
    """The `dashboard` image has no Airflow, dbt or Kafka client: those may only be imported lazily."""
    code = (
        "import sys; import stockpipe.dashboard.queries, stockpipe.dashboard.views, stockpipe.dashboard.settings, "
        "stockpipe.dashboard.cli, stockpipe.dashboard.stream; "
        "print(sorted({'.'.join(m.split('.')[:2]) for m in sys.modules} & {'airflow', 'dbt', 'confluent_kafka', "
        "'finnhub', 'kopf', 'snowflake.connector', 'snowflake.snowpark'}))"
    )
    # Not the bare `snowflake`: Snowpark's wheel declares that namespace in a .pth file, so every
    # interpreter of an environment holding it has the (empty) namespace module from its start.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_without_a_terminal_the_demo_prints_how_to_serve_the_dashboard_and_returns(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from stockpipe.settings import KafkaSettings, LakeSettings
    from stockpipe_dev.demo import _serve_dashboard

    warehouse = tmp_path / "demo warehouse" / "stockpipe.duckdb"
    _serve_dashboard(warehouse, LakeSettings(url=f"file://{tmp_path}/lake"), KafkaSettings(), 8502)
    err = capsys.readouterr().err
    command = next(line for line in err.splitlines() if "stockpipe dashboard" in line)
    assert f"STOCKPIPE_WAREHOUSE__DUCKDB_PATH='{warehouse}'" in command
    assert command.endswith("stockpipe dashboard --port 8502")
