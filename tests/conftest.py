"""Shared fixtures: real local services on free loopback ports, started once per test session."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stockpipe.settings import LakeSettings
from stockpipe_dev.localservices.finnhub_standin import FinnhubStandin
from stockpipe_dev.localservices.kafka import KafkaBroker
from stockpipe_dev.localservices.minio import MinioServer
from stockpipe_dev.localservices.process import free_port
from stockpipe_dev.localservices.slack_standin import SlackWebhookStandin

# pytester: the suite tests its own rules (tests/unit/core/test_required_suites.py).
pytest_plugins = ["pytester", "tests.required_suites", "tests.e2e_report"]

FREE_TOKEN = "free-test-token-0001"
PREMIUM_TOKEN = "premium-test-token-0001"


# What one machine has once: the node (its bridge, gateway address, iptables chains and DNS port), the
# Docker engine the image and node tests start and stop, the default service ports and state folders.
# Under pytest-xdist (`make test` runs two workers) these tests share one worker, and every other
# module's tests share one too (its module fixtures are built once).
ONE_PER_MACHINE = (
    "tests/cluster/",
    "tests/images/",
    "tests/integration/localservices/test_services_cli.py",
    # Chromium fetches Streamlit's JS chunks over loopback: a bridge created beside it broke those fetches.
    "tests/integration/dashboard/test_pages.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests under tests/integration use real services; everything else is a unit test."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts or "cluster" in parts:
            item.add_marker(pytest.mark.integration)
        elif "unit" in parts or "chart" in parts:
            item.add_marker(pytest.mark.unit)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Whole modules to a worker, and the machine's one-of-a-kind tests together (pytest-xdist's own
    --dist loadgroup marks are not seen under pytest 9: it sets a node id attribute pytest no longer reads)."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleAndMachineScheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist has no type hints
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "machine" if module.startswith(ONE_PER_MACHINE) else module

    return ModuleAndMachineScheduling(config, log)


@pytest.fixture(scope="session", autouse=True)
def dbt_scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Each test process's own dbt target and log folders: dbt/target is one per checkout, and two test
    workers building at once would overwrite each other's manifest and partial parse."""
    root = tmp_path_factory.mktemp("dbt")
    patch = pytest.MonkeyPatch()
    patch.setenv("DBT_TARGET_PATH", str(root / "target"))
    patch.setenv("DBT_LOG_PATH", str(root / "logs"))
    patch.setenv("STOCKPIPE_DBT_TARGET_PATH", str(root / "target" / "continuous"))  # the continuous loader's
    yield
    patch.undo()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Entry points install their own root handler (on a stream the test runner closes): put pytest's back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def no_outside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come only from the test: none leak in from the developer's environment."""
    for name in list(os.environ):
        if name.startswith("STOCKPIPE_") and name not in (
            "STOCKPIPE_CACHE_DIR",
            "STOCKPIPE_STATE_DIR",
            "STOCKPIPE_DBT_TARGET_PATH",
        ):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"), free_port(), free_port())
    record = broker.start()
    yield broker
    KafkaBroker.stop(record)


@pytest.fixture(scope="session")
def minio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    server = MinioServer(tmp_path_factory.mktemp("minio"), free_port(), free_port())
    record = server.start()
    yield server
    MinioServer.stop(record)


@pytest.fixture
def s3_lake(minio_server: MinioServer, request: pytest.FixtureRequest) -> LakeSettings:
    """A lake on the local MinIO, under a prefix of its own for each test."""
    prefix = request.node.name.replace("[", "_").replace("]", "_")[:60]
    return LakeSettings(
        url=f"s3://{minio_server.bucket}/{prefix}",
        s3_endpoint_url=minio_server.endpoint,
        access_key=minio_server.access_key,  # type: ignore[arg-type]
        secret_key=minio_server.secret_key,  # type: ignore[arg-type]
    )


@pytest.fixture
def finnhub_standin() -> Iterator[FinnhubStandin]:
    with FinnhubStandin(free_tokens=[FREE_TOKEN], premium_tokens=[PREMIUM_TOKEN]) as standin:
        assert isinstance(standin, FinnhubStandin)
        yield standin


@pytest.fixture
def slack_standin() -> Iterator[SlackWebhookStandin]:
    with SlackWebhookStandin() as standin:
        assert isinstance(standin, SlackWebhookStandin)
        yield standin
