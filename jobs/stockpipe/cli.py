"""The `stockpipe` command: one entry point per workload (each a thin wrapper over its stage).

Development commands (local services, the cluster, benchmarks, the demo) live in the separate
`stockpipe_dev` distribution; they join this command through the `stockpipe.cli` entry-point group
when it is installed (the development environment), and never exist in an image.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

from stockpipe.batch.cli import history_app
from stockpipe.dashboard.cli import dashboard_command
from stockpipe.lake.cli import lake_app
from stockpipe.marketdata.cli import calendar_command
from stockpipe.operator.cli import mirror_command, operator_command
from stockpipe.orchestration.cli import watch_app
from stockpipe.stream.cli import consumer_command, producer_command
from stockpipe.stream.probe import probe_command
from stockpipe.warehouse.cli import load_app

PLUGIN_GROUP = "stockpipe.cli"

app = typer.Typer(
    help="stockpipe: US stock market data pipeline.", no_args_is_help=True, pretty_exceptions_enable=False
)
app.add_typer(history_app, name="history")
app.add_typer(load_app, name="load")
app.add_typer(lake_app, name="lake")
app.add_typer(watch_app, name="watch")
app.command("calendar")(calendar_command)
app.command("dashboard")(dashboard_command)
app.command("producer")(producer_command)
app.command("consumer")(consumer_command)
app.command("probe")(probe_command)
app.command("operator")(operator_command)
app.command("watchlist-mirror")(mirror_command)


def add_plugins(target: typer.Typer) -> None:
    """Each `stockpipe.cli` entry point is a Typer group (added under its name) or a command function."""
    for entry in entry_points(group=PLUGIN_GROUP):
        loaded = entry.load()
        if isinstance(loaded, typer.Typer):
            target.add_typer(loaded, name=entry.name)
        elif callable(loaded):
            target.command(entry.name)(loaded)
        else:
            raise TypeError(f"entry point {entry.name} = {entry.value} is neither a Typer app nor a command")


def main() -> None:
    """The console script: the product's commands plus whatever installed plugins add."""
    add_plugins(app)
    app()


if __name__ == "__main__":
    main()
