"""`stockpipe services ...`: the local services for one machine."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

services_app = typer.Typer(help="Local Kafka, MinIO and the Finnhub/Slack stand-ins, as background processes.")
console = Console(stderr=True)


@services_app.command("up")
def services_up(
    port_base: int = typer.Option(
        19000, envvar="STOCKPIPE_SERVICES_PORT_BASE", help="MinIO's port; the others follow it"
    ),
) -> None:
    """Start every local service (building or downloading it once) and wait until ready."""
    from stockpipe_dev.localservices import manager

    manager.up(manager.Ports.from_base(port_base), echo=console.print)


@services_app.command("down")
def services_down() -> None:
    """Stop every local service started by `services up`."""
    from stockpipe_dev.localservices import manager

    manager.down(echo=console.print)


@services_app.command("status")
def services_status() -> None:
    """Report each service's health by doing real work with it; exit 1 if any is unhealthy."""
    from stockpipe_dev.localservices import manager

    table = Table("service", "healthy", "detail")
    results = manager.status()
    for name, (ok, detail) in results.items():
        table.add_row(name, "[green]yes[/]" if ok else "[red]no[/]", detail)
    Console().print(table)
    if not all(ok for ok, _ in results.values()):
        raise typer.Exit(1)


@services_app.command("env")
def services_env() -> None:
    """Print shell exports that point the pipeline at the running services (`eval "$(stockpipe services env)"`)."""
    from stockpipe_dev.localservices import manager

    for key, value in manager.env_exports().items():
        print(f"export {key}={shlex.quote(value)}")


@services_app.command("prefetch")
def services_prefetch(
    with_node: Annotated[bool, typer.Option("--with-node", help="also the node's binaries (make e2e)")] = False,
) -> None:
    """Download and build the services and tools into the cache (Kafka jars, MinIO, helm, kubeconform)."""
    from stockpipe_dev.localservices import manager

    manager.prefetch(echo=console.print, with_node=with_node)
