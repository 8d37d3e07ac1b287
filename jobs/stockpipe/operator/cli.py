"""`stockpipe operator` and `stockpipe watchlist-mirror`: option parsing only.

kopf (and the Kubernetes client behind it) take seconds to import; they load when these commands
run, not on every `stockpipe` invocation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from stockpipe.contracts.watchlist import WATCHLIST_FILE_KEY


def operator_command(
    namespace: Annotated[
        str | None, typer.Option(help="Namespace to serve (env STOCKPIPE_NAMESPACE; default: the pod's own).")
    ] = None,
    configmap: Annotated[
        str | None, typer.Option(help="The producer's ConfigMap (env STOCKPIPE_CONFIGMAP_NAME).")
    ] = None,
    resync_seconds: Annotated[
        float | None, typer.Option(help="Timer that undoes hand edits of the ConfigMap (env STOCKPIPE_RESYNC_SECONDS).")
    ] = None,
    liveness_port: Annotated[
        int | None, typer.Option(help="Port of GET /healthz, 0 for none (env STOCKPIPE_LIVENESS_PORT).")
    ] = None,
) -> None:
    """Run the TickerWatchlist operator: renders the producer's ConfigMap from the watchlists."""
    overrides: dict[str, Any] = {
        key: value
        for key, value in {
            "namespace": namespace,
            "configmap_name": configmap,
            "resync_seconds": resync_seconds,
            "liveness_port": liveness_port,
        }.items()
        if value is not None
    }
    from stockpipe.logs import setup_logging
    from stockpipe.operator.main import quiet_operator_logs, run_operator
    from stockpipe.operator.settings import OperatorSettings
    from stockpipe.settings import load_settings

    settings = load_settings(OperatorSettings, **overrides)
    setup_logging(settings.log_level)
    quiet_operator_logs()
    run_operator(settings)


def mirror_command(
    path: Annotated[Path, typer.Argument(help="File to keep equal to the ConfigMap key.")],
    namespace: Annotated[str, typer.Option(help="Namespace of the ConfigMap.")] = "default",
    name: Annotated[str, typer.Option(help="Name of the ConfigMap.")] = "stockpipe-watchlist",
    key: Annotated[str, typer.Option(help="Key inside the ConfigMap.")] = WATCHLIST_FILE_KEY,
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 1.0,
    server: Annotated[
        str | None, typer.Option(help="API server URL without credentials (a local one); default: kubeconfig.")
    ] = None,
) -> None:
    """Mirror the producer's ConfigMap into a file, like a ConfigMap volume (for one machine)."""
    import asyncio

    import kopf

    from stockpipe.operator.configmap_mirror import mirror_configmap

    connection = kopf.ConnectionInfo(server=server) if server else None
    asyncio.run(mirror_configmap(namespace, name, path, key=key, interval=interval, connection=connection))
