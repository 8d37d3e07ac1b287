"""Airflow reads its configuration when first imported: point it at a throwaway home before that,
so that these tests never touch ~/airflow or a developer's own Airflow setup."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockpipe.orchestration import settings as orchestration_settings
from stockpipe.orchestration.embedded import airflow_env

DAGS = Path(__file__).resolve().parents[3] / "dags"

if "airflow" not in sys.modules and not os.environ.get("STOCKPIPE_TEST_AIRFLOW_HOME"):
    _home = Path(tempfile.mkdtemp(prefix="stockpipe-airflow-unit-"))
    os.environ.update(airflow_env(_home, DAGS))
    os.environ["STOCKPIPE_TEST_AIRFLOW_HOME"] = str(_home)
    import atexit

    atexit.register(shutil.rmtree, _home, ignore_errors=True)


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings come from the environment of each test, not from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("STOCKPIPE_AIRFLOW__"):
            monkeypatch.delenv(name)
    orchestration_settings.airflow_settings.cache_clear()
    yield
    orchestration_settings.airflow_settings.cache_clear()
