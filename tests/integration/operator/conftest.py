"""Fixtures: a kmock API server with the TickerWatchlist CRD, and the real operator running against it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from stockpipe.operator.settings import OperatorSettings
from stockpipe_dev.localservices.process import free_port
from tests.integration.operator.kube_emulator import ApiServerThread, Kube
from tests.integration.operator.operator_harness import (
    CONFIGMAP,
    NAMESPACE,
    RESYNC_SECONDS,
    RunningOperator,
    build_apiserver,
)


@pytest.fixture
def apiserver() -> Iterator[ApiServerThread]:
    with ApiServerThread(build_apiserver()) as running:
        yield running


@pytest.fixture
def kube(apiserver: ApiServerThread) -> Kube:
    return Kube(apiserver.url)


@pytest.fixture
def start_operator(apiserver: ApiServerThread) -> Iterator[Callable[[], RunningOperator]]:
    """Start the real operator (same entry point as `stockpipe operator`) in a thread; stopped after the test."""
    started: list[RunningOperator] = []

    def start() -> RunningOperator:
        settings = OperatorSettings(
            namespace=NAMESPACE,
            configmap_name=CONFIGMAP,
            resync_seconds=RESYNC_SECONDS,
            liveness_host="127.0.0.1",
            liveness_port=free_port(),
        )
        operator = RunningOperator(settings, apiserver.url).start()
        started.append(operator)
        return operator

    yield start
    for operator in started:
        operator.shutdown()
