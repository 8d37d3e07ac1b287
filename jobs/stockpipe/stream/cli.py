"""`stockpipe producer` and `stockpipe consumer`: the streaming workloads' entry points."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import typer

if TYPE_CHECKING:
    from stockpipe.settings import StockpipeSettings

S = TypeVar("S", bound="StockpipeSettings")


def _settings_or_exit(cls: type[S]) -> S:
    """Validated settings, logging set up; a bad setting exits 2 with the field named."""
    from stockpipe.logs import setup_logging
    from stockpipe.settings import ConfigError, load_settings

    try:
        settings = load_settings(cls)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    setup_logging(settings.log_level)
    return settings


def producer_command() -> None:
    """Fetch quotes (Finnhub or synthetic) during NYSE sessions and publish them to Kafka."""
    from stockpipe.stream.producer import ProducerSettings, run_producer

    run_producer(_settings_or_exit(ProducerSettings))


def consumer_command() -> None:
    """Write the quotes and trades topics to the lake as Parquet, exactly once."""
    from stockpipe.stream.consumer import ConsumerSettings, run_consumer

    run_consumer(_settings_or_exit(ConsumerSettings))
