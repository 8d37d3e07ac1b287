"""`stockpipe load dbt-build` arguments: --as-of becomes the freshness_as_of var (without running dbt)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from stockpipe.warehouse import cli
from stockpipe.warehouse.cli import load_app


@pytest.fixture
def dbt_args(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    monkeypatch.setattr(cli, "_run_dbt", lambda args, target: calls.append(args))
    return calls


def test_as_of_measures_freshness_at_the_given_instant(dbt_args: list[list[str]]) -> None:
    result = CliRunner().invoke(load_app, ["dbt-build", "--as-of", "2025-01-14T16:00:00-05:00", "--select", "marts"])
    assert result.exit_code == 0, result.output
    [args] = dbt_args
    assert args[:3] == ["build", "--vars", json.dumps({"freshness_as_of": "2025-01-14T16:00:00-05:00"})]
    assert args[3:] == ["--select", "marts"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--as-of", "yesterday"], "not an ISO 8601 instant"),
        (["--as-of", "2025-01-14T16:00:00"], "needs a UTC offset"),
        (["--as-of", "2025-01-14T16:00:00+00:00", "--vars", "{bar_grace_hours: 4}"], "cannot be combined"),
    ],
)
def test_as_of_is_checked_before_dbt_runs(dbt_args: list[list[str]], extra: list[str], message: str) -> None:
    result = CliRunner().invoke(load_app, ["dbt-build", *extra])
    assert result.exit_code == 2
    assert message in result.output
    assert dbt_args == []
