"""`stockpipe demo`: the whole pipeline that exists, end to end on one machine, no credentials."""

from __future__ import annotations

import typer
from rich.console import Console

console = Console(stderr=True)


def demo_command(
    port_base: int = typer.Option(29000, help="Ports for the demo's own services (MinIO's; the others follow)"),
) -> None:
    """Start local services, run every stage on the synthetic market, print what came out, stop."""
    from stockpipe.localservices import manager

    ports = manager.Ports.from_base(port_base)
    console.rule("local services")
    manager.up(ports, echo=console.print)
    try:
        for name, (ok, detail) in manager.status().items():
            console.print(f"{name}: {'healthy' if ok else 'UNHEALTHY'} - {detail}")
            if not ok:
                raise typer.Exit(1)
    finally:
        console.rule("stopping")
        manager.down(echo=console.print)
