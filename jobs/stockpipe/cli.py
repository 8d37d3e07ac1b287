"""The `stockpipe` command: one entry point per workload (each a thin wrapper over its stage)."""

from __future__ import annotations

import typer

from stockpipe.batch.cli import history_app
from stockpipe.bench.cli import bench_app
from stockpipe.dashboard.cli import dashboard_command
from stockpipe.demo import demo_command
from stockpipe.lake.cli import lake_app
from stockpipe.localservices.cli import services_app
from stockpipe.localservices.kube.cli import cluster_app
from stockpipe.marketdata.cli import calendar_command
from stockpipe.operator.cli import mirror_command, operator_command
from stockpipe.orchestration.cli import watch_app
from stockpipe.stream.cli import consumer_command, producer_command
from stockpipe.stream.probe import probe_command
from stockpipe.warehouse.cli import load_app

app = typer.Typer(
    help="stockpipe: US stock market data pipeline.", no_args_is_help=True, pretty_exceptions_enable=False
)
app.add_typer(services_app, name="services")
app.add_typer(cluster_app, name="cluster")
app.add_typer(bench_app, name="bench")
app.add_typer(history_app, name="history")
app.add_typer(load_app, name="load")
app.add_typer(lake_app, name="lake")
app.add_typer(watch_app, name="watch")
app.command("calendar")(calendar_command)
app.command("dashboard")(dashboard_command)
app.command("demo")(demo_command)
app.command("producer")(producer_command)
app.command("consumer")(consumer_command)
app.command("probe")(probe_command)
app.command("operator")(operator_command)
app.command("watchlist-mirror")(mirror_command)


if __name__ == "__main__":
    app()
