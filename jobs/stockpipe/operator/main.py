"""Entry point of the TickerWatchlist operator: `stockpipe operator`.

Standalone (no peering): the Deployment runs one replica with the Recreate strategy, so two
operators never overlap in a rollout, and if one ever did (a developer running it locally beside
the cluster's), both compute the same ConfigMap from the same watchlists. Peering would add a
KopfPeering CRD and its RBAC for no gain.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import kopf

from stockpipe.operator.handlers import WatchlistController
from stockpipe.operator.kubeapi import login_without_client
from stockpipe.operator.settings import OperatorSettings
from stockpipe.settings import load_settings

FINALIZER = "stockpipe.io/watchlist-operator"
COMPONENT = "stockpipe-operator"


def build_kopf_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.peering.standalone = True
    # No cluster-wide watch of CRDs: it needs a ClusterRole, and the CRD is installed with the chart.
    settings.scanning.disabled = True
    # kopf's bookkeeping under our own domain instead of kopf.zalando.org.
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="stockpipe.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="stockpipe.io", key="last-handled-configuration"
    )
    settings.posting.reporting_component = COMPONENT
    settings.posting.event_name_prefix = f"{COMPONENT}-"
    return settings


def run_operator(
    settings: OperatorSettings | None = None,
    *,
    connection: kopf.ConnectionInfo | None = None,
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
) -> None:
    """Run until SIGINT/SIGTERM (main thread only) or until stop_flag is set.

    Credentials: `connection` when given (an API server of the embedded demo or of a test), else
    kopf's usual login: the in-cluster service account, then the kubeconfig. The kubernetes client
    reads $KUBECONFIG when it is first imported, so set it before starting the process.
    """
    settings = settings or load_settings(OperatorSettings)
    kopf_settings = build_kopf_settings()
    registry = kopf.OperatorRegistry()
    # A fresh registry has no login handler of its own.
    if connection is None:
        kopf.on.login(registry=registry)(login_without_client)
    else:
        fixed = connection

        def login(**_: Any) -> kopf.ConnectionInfo:
            return fixed

        kopf.on.login(registry=registry)(login)
    WatchlistController(settings, kopf_settings).register(registry)
    kopf.run(
        registry=registry,
        settings=kopf_settings,
        standalone=True,
        clusterwide=False,
        namespaces=[settings.resolved_namespace()],
        liveness_endpoint=settings.liveness_endpoint,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )


def _drop_kopf_settings(record: logging.LogRecord) -> bool:
    # kopf attaches its whole OperatorSettings to every per-object record; the JSON formatter would
    # print all of it on each line. kopf's own event poster has seen the record by the time the
    # root handlers run.
    record.__dict__.pop("settings", None)
    return True


def quiet_operator_logs() -> None:
    """Keep the operator's logs readable: no liveness-probe access lines, no kopf settings dumps."""
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_drop_kopf_settings)
