"""`stockpipe probe`: prove the real-time path end to end in a running deployment (the chart's `helm test`).

1. Publish one probe quote (symbol `PROBE`, source `probe`, a price unique to this run) to the quotes
   topic, then a watermark a day ahead in every partition, so the consumer closes the file holding it now
   instead of at the end of its record-time window (files are never cut by wall-clock).
2. Wait for the consumer's lake object whose offsets cover the probe and read the probe's row back.
3. Optionally, check that a TickerWatchlist is Ready (the operator rendered the producer's ConfigMap),
   through the API server with the pod's own service account.

The probe row lands in bronze like any quote; its source `probe` tells it apart.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import ssl
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import orjson
import pyarrow.parquet as pq
import typer
from pydantic import Field

from stockpipe.contracts.messages import QUOTE_V1, WATERMARK_V1, iso, quote_message
from stockpipe.lake.layout import StreamObject, dataset_prefix, parse_dt_dir
from stockpipe.settings import KafkaSettings, LakeSettings, StockpipeSettings

if TYPE_CHECKING:
    from stockpipe.lake.store import Lake

PROBE_SYMBOL = "PROBE"
PROBE_SOURCE = "probe"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ProbeError(Exception):
    """The probe failed; the message says at which step and why."""


class ProbeSettings(StockpipeSettings):
    kafka: KafkaSettings = KafkaSettings()
    lake: LakeSettings = LakeSettings()
    namespace: str | None = Field(None, description="namespace of the watchlist; default: the pod's own")


@dataclass(frozen=True)
class ProbeQuote:
    partition: int
    offset: int
    price: float
    quote_ts: datetime


def publish_probe(kafka: KafkaSettings, now: datetime | None = None, timeout_s: float = 30.0) -> ProbeQuote:
    """Publish the probe quote and a watermark a day ahead in every partition of the quotes topic."""
    from confluent_kafka import KafkaError, Message, Producer

    now = (now or datetime.now(UTC)).replace(microsecond=0)
    # Unique to this run (cents), so the row read back is this probe's and no earlier one's.
    price = 1000 + secrets.randbelow(9_000_000) / 100
    body = quote_message(
        PROBE_SYMBOL,
        {"c": price, "d": 0.0, "dp": 0.0, "h": price, "l": price, "o": price, "pc": price, "t": int(now.timestamp())},
        now,
        PROBE_SOURCE,
    )
    producer = Producer({**kafka.client_config(), "enable.idempotence": True, "acks": "all"})
    delivered: list[Message] = []
    errors: list[KafkaError] = []

    def report(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(err)
        else:
            delivered.append(msg)

    topic = kafka.topic_quotes
    producer.produce(topic, orjson.dumps(body), key=PROBE_SYMBOL.encode(), on_delivery=report)
    if producer.flush(timeout_s) or errors or not delivered:
        raise ProbeError(f"publishing the probe quote to {topic} failed: {errors[0] if errors else 'timed out'}")
    metadata = producer.list_topics(topic, timeout=timeout_s).topics[topic]
    if metadata.error is not None:
        raise ProbeError(f"topic {topic}: {metadata.error}")
    mark = orjson.dumps({"schema": WATERMARK_V1, "watermark_ts": iso(now + timedelta(days=1))})
    for partition in metadata.partitions:
        producer.produce(topic, mark, partition=partition, on_delivery=report)
    if producer.flush(timeout_s) or errors:
        raise ProbeError(f"publishing the watermarks to {topic} failed: {errors[0] if errors else 'timed out'}")
    msg = delivered[0]
    partition, offset = msg.partition(), msg.offset()
    if partition is None or offset is None:
        raise ProbeError("the broker acknowledged the probe quote without a partition and offset")
    return ProbeQuote(partition=partition, offset=offset, price=price, quote_ts=now)


def find_probe_object(lake: Lake, topic: str, probe: ProbeQuote) -> str | None:
    """The lake object holding the probe quote (checked by reading its row back), or None yet."""
    earliest = probe.quote_ts.date() - timedelta(days=1)
    for dt_dir in reversed(lake.listdir(dataset_prefix(QUOTE_V1.dataset))):
        day = parse_dt_dir(dt_dir.rsplit("/", 1)[-1])
        if day is None or day < earliest:
            continue
        for key in lake.listdir(dt_dir):
            obj = StreamObject.parse(key)
            if (
                obj is None
                or obj.topic != topic
                or obj.partition != probe.partition
                or not obj.first_offset <= probe.offset <= obj.last_offset
            ):
                continue
            table = pq.read_table(io.BytesIO(lake.read(key))).to_pylist()
            if any(_is_probe_row(row, probe) for row in table):
                return key
            raise ProbeError(f"{key} covers offset {probe.offset} but holds no probe row")
    return None


def _is_probe_row(row: dict[str, Any], probe: ProbeQuote) -> bool:
    return bool(
        row.get("kafka_offset") == probe.offset
        and row.get("symbol") == PROBE_SYMBOL
        and row.get("price") == probe.price
    )


def wait_for_probe_object(
    lake: Lake, topic: str, probe: ProbeQuote, timeout_s: float, poll_s: float = 2.0, clock: Any = time
) -> str:
    deadline = clock.monotonic() + timeout_s
    while True:
        key = find_probe_object(lake, topic, probe)
        if key is not None:
            return key
        if clock.monotonic() >= deadline:
            raise ProbeError(
                f"no lake object holds the probe quote ({topic} partition {probe.partition} offset {probe.offset}) "
                f"after {timeout_s:.0f} s: is the consumer running and reaching the lake?"
            )
        clock.sleep(poll_s)


def ready_condition(watchlist: dict[str, Any]) -> tuple[bool, str]:
    """(Ready, why) of a TickerWatchlist body: Ready=True for its current generation."""
    status = watchlist.get("status") or {}
    generation = (watchlist.get("metadata") or {}).get("generation")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            reason = f"{condition.get('reason', '')}: {condition.get('message', '')}".strip(": ")
            if condition.get("status") != "True":
                return False, f"Ready={condition.get('status')} ({reason})"
            if generation is not None and status.get("observedGeneration") != generation:
                return False, f"Ready describes generation {status.get('observedGeneration')}, not {generation}"
            return True, reason or "Ready"
    return False, "no Ready condition yet (is the operator running?)"


def read_watchlist(namespace: str, name: str, sa_dir: Path = SERVICE_ACCOUNT_DIR) -> dict[str, Any]:
    """GET a TickerWatchlist from the API server as this pod's service account."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    token_file = sa_dir / "token"
    if not host or not token_file.is_file():
        raise ProbeError("not in a pod with a service account token: cannot read the watchlist")
    url = (
        f"https://{host}:{port}/apis/stockpipe.io/v1alpha1/namespaces/{quote(namespace, safe='')}"
        f"/tickerwatchlists/{quote(name, safe='')}"
    )
    request = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {token_file.read_text(encoding='utf-8').strip()}"}
    )
    context = ssl.create_default_context(cafile=str(sa_dir / "ca.crt"))
    try:
        with urllib.request.urlopen(request, timeout=15, context=context) as response:  # noqa: S310 (https to the API server only)
            body: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as exc:
        raise ProbeError(f"reading TickerWatchlist {namespace}/{name}: HTTP {exc.code} {exc.reason}") from None
    except OSError as exc:
        raise ProbeError(f"reading TickerWatchlist {namespace}/{name}: {exc}") from None
    return body


def wait_for_ready(namespace: str, name: str, timeout_s: float, poll_s: float = 2.0, clock: Any = time) -> str:
    deadline = clock.monotonic() + timeout_s
    while True:
        ready, why = ready_condition(read_watchlist(namespace, name))
        if ready:
            return why
        if clock.monotonic() >= deadline:
            raise ProbeError(f"TickerWatchlist {namespace}/{name} is not Ready after {timeout_s:.0f} s: {why}")
        clock.sleep(poll_s)


def run_probe(settings: ProbeSettings, watchlist: str | None, timeout_s: float) -> list[str]:
    """Every step in order; returns one line per step passed, raises ProbeError at the first that fails."""
    started = time.monotonic()
    lines: list[str] = []
    if watchlist:
        namespace = settings.namespace or _own_namespace()
        lines.append(f"watchlist {namespace}/{watchlist} Ready: {wait_for_ready(namespace, watchlist, timeout_s)}")
    probe = publish_probe(settings.kafka)
    lines.append(
        f"probe quote published: {settings.kafka.topic_quotes} partition {probe.partition} offset {probe.offset}"
    )
    left = max(timeout_s - (time.monotonic() - started), 1.0)
    from stockpipe.lake.store import Lake  # s3fs only where the lake is read

    key = wait_for_probe_object(Lake(settings.lake), settings.kafka.topic_quotes, probe, left)
    lines.append(f"probe quote in the lake: {key} ({time.monotonic() - started:.1f} s)")
    return lines


def _own_namespace() -> str:
    path = SERVICE_ACCOUNT_DIR / "namespace"
    return path.read_text(encoding="utf-8").strip() if path.is_file() else "default"


def probe_command(
    watchlist: Annotated[
        str | None, typer.Option(help="also check that this TickerWatchlist (in STOCKPIPE_NAMESPACE) is Ready")
    ] = None,
    timeout: Annotated[float, typer.Option(min=1, help="seconds for all steps together")] = 300.0,
) -> None:
    """Prove the real-time path: a probe quote through Kafka and the consumer into the lake (helm test)."""
    from stockpipe.logs import setup_logging
    from stockpipe.settings import ConfigError, load_settings

    try:
        settings = load_settings(ProbeSettings)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    setup_logging(settings.log_level)
    try:
        for line in run_probe(settings, watchlist, timeout):
            typer.echo(line)
    except ProbeError as exc:
        typer.echo(f"probe failed: {exc}", err=True)
        raise typer.Exit(1) from None
