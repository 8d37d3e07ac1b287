"""`stockpipe producer` and `stockpipe consumer`: the streaming workloads' entry points."""

from __future__ import annotations

import typer


def producer_command() -> None:
    """Fetch quotes (Finnhub or synthetic) during NYSE sessions and publish them to Kafka."""
    from stockpipe.logs import setup_logging
    from stockpipe.settings import ConfigError, load_settings
    from stockpipe.stream.producer import ProducerSettings, run_producer

    try:
        settings = load_settings(ProducerSettings)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    setup_logging(settings.log_level)
    run_producer(settings)


def consumer_command() -> None:
    """Write the quotes and trades topics to the lake as Parquet, exactly once."""
    from stockpipe.logs import setup_logging
    from stockpipe.settings import ConfigError, load_settings
    from stockpipe.stream.consumer import ConsumerSettings, run_consumer

    try:
        settings = load_settings(ConsumerSettings)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    setup_logging(settings.log_level)
    run_consumer(settings)
