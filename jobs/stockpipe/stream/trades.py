"""Trades: Finnhub's websocket (one connection per key) and the synthetic market's trades.

Websocket protocol: connect to `wss://ws.finnhub.io?token=KEY`, send
`{"type":"subscribe","symbol":"AAPL"}`, receive `{"type":"trade","data":[{"s","p","t"(ms),"v","c"}]}`
and `{"type":"ping"}`. The client reconnects with jittered exponential back-off, resubscribes the
watchlist on every connection and follows watchlist changes with (un)subscribe messages.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import websockets
from prometheus_client import Counter

from stockpipe.contracts.messages import TRADE_V1, iso
from stockpipe.logs import redact
from stockpipe.marketdata import calendar
from stockpipe.marketdata.synthetic import SyntheticMarket, stable_int
from stockpipe.stream.publisher import ProducerQueueFull, Publisher

log = logging.getLogger("stockpipe.trades")

WS_RECONNECTS = Counter("stockpipe_producer_ws_reconnects_total", "Websocket reconnections")
WS_TRADES = Counter("stockpipe_producer_ws_trades_total", "Trades received over the websocket")
_SEQ_MEMORY = 50_000  # (symbol, time) keys kept for seq numbering before the old ones are dropped


def trade_messages(
    data: list[dict[str, Any]], fetched_at: datetime, source: str, seen: dict[tuple[str, int], int] | None = None
) -> list[dict[str, Any]]:
    """Finnhub trade items as trade.v1 messages; seq numbers trades that share symbol and time.

    `seen` carries the numbering across calls (the websocket's frames): two identical trades in two
    frames are two trades, with two seq numbers, so bronze's natural key keeps both.
    """
    seen = {} if seen is None else seen
    out = []
    for item in data:
        symbol, t_ms = str(item.get("s", "")), item.get("t")
        seq = seen.get((symbol, t_ms if isinstance(t_ms, int) else -1), 0)
        seen[(symbol, t_ms if isinstance(t_ms, int) else -1)] = seq + 1
        out.append(
            {
                "schema": TRADE_V1.name,
                "symbol": symbol,
                "trade_ts": iso(datetime.fromtimestamp(t_ms / 1000, UTC)) if isinstance(t_ms, int | float) else None,
                "fetched_at": iso(fetched_at),
                "source": source,
                "price": item.get("p"),
                "size": item.get("v"),
                "seq": seq,
                "conditions": item.get("c") or [],
            }
        )
    return out


class SyntheticTrades:
    """A few trades per symbol and minute along the synthetic market's intraday path."""

    def __init__(self, market: SyntheticMarket, per_minute: int = 3) -> None:
        self.market = market
        self.per_minute = per_minute

    def minute(self, symbol: str, minute_start: datetime) -> list[dict[str, Any]]:
        day = minute_start.astimezone(calendar.NEW_YORK).date()  # the session's day (a UTC day ends at 19:00/20:00)
        if not calendar.is_session(day):
            return []  # extended hours reach into nights and weekends: no synthetic trades there
        path = self.market.intraday(symbol, day)
        i = int((minute_start - path.open_utc).total_seconds() // 60)
        if not 0 <= i < len(path.prices):
            return []
        rng = np.random.default_rng([self.market.seed, stable_int(symbol), int(minute_start.timestamp())])
        items: list[dict[str, Any]] = []
        for k in range(self.per_minute):
            t = minute_start + timedelta(milliseconds=int(rng.integers(0, 60_000)))
            price = round(float(path.prices[i]) * (1 + rng.normal(0, 0.0002)), 2)
            size = max(1, int(path.volumes[i] / self.per_minute * rng.uniform(0.5, 1.5)))
            items.append({"s": symbol, "p": price, "t": int(t.timestamp() * 1000), "v": size, "c": ["1"] if k else []})
        items.sort(key=lambda x: int(x["t"]))
        return trade_messages(items, minute_start + timedelta(minutes=1), "synthetic")


class FinnhubTradeStream:
    """One websocket connection, open only while `wanted()` names symbols (the URL carries the token)."""

    def __init__(
        self,
        url: str,
        token: str,
        wanted: Callable[[], set[str]],
        topic: str,
        publisher: Publisher,
        stop: threading.Event,
        flush_every_s: float = 0.2,
        idle_check_s: float = 1.0,
    ) -> None:
        self.url = f"{url}?token={token}"
        self.wanted = wanted
        self.topic = topic
        self.publisher = publisher
        self.stop = stop
        self.flush_every_s = flush_every_s
        self.idle_check_s = idle_check_s
        self.connections = 0
        self.received = 0
        self._pending: list[dict[str, Any]] = []  # received, not yet published: survives a dropped connection
        self._seq: dict[tuple[str, int], int] = {}  # (symbol, t ms) -> next seq, across frames and reconnects

    def _number(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        messages = trade_messages(items, datetime.now(UTC), "finnhub_ws", self._seq)
        if len(self._seq) > _SEQ_MEMORY:
            # Trades a minute older than the newest cannot share a time with new ones any more.
            newest = max(t for _, t in self._seq)
            self._seq = {k: v for k, v in self._seq.items() if k[1] > newest - 60_000}
        return messages

    def _flush_pending(self) -> None:
        batch, self._pending = self._pending, []
        self._publish(batch)

    def _publish(self, batch: list[dict[str, Any]]) -> None:
        while batch:
            try:
                self.publisher.publish(self.topic, TRADE_V1, batch)
                return
            except ProducerQueueFull as exc:
                batch = exc.remaining  # what is queued stays queued: only the rest is retried
                log.error("%s; holding %d trades", exc, len(batch))
                if self.stop.is_set():
                    log.error("stopping: %d trades not published", len(batch))
                    return

    async def _session(self) -> None:
        async with websockets.connect(self.url, ping_interval=20, ping_timeout=20, max_size=2**22) as ws:
            self.connections += 1
            subscribed: set[str] = set()
            last_flush = time.monotonic()
            while not self.stop.is_set():
                wanted = self.wanted()
                if not wanted:
                    return  # nothing asked for trades any more: close the connection
                for symbol in sorted(wanted - subscribed):
                    await ws.send(orjson.dumps({"type": "subscribe", "symbol": symbol}).decode())
                for symbol in sorted(subscribed - wanted):
                    await ws.send(orjson.dumps({"type": "unsubscribe", "symbol": symbol}).decode())
                subscribed = wanted
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=self.flush_every_s)
                except TimeoutError:
                    raw = None
                if raw is not None:
                    try:
                        msg = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        log.warning("websocket sent something that is not JSON: %r", str(raw)[:200])
                        msg = {}
                    kind = msg.get("type") if isinstance(msg, dict) else None
                    if kind == "trade" and isinstance(msg.get("data"), list):
                        items = [d for d in msg["data"] if isinstance(d, dict)]
                        self._pending.extend(self._number(items))
                        self.received += len(items)
                        WS_TRADES.inc(len(items))
                    elif kind == "error":
                        log.error("Finnhub websocket error: %s", msg.get("msg"))
                if self._pending and (
                    len(self._pending) >= 1000 or time.monotonic() - last_flush >= self.flush_every_s
                ):
                    self._flush_pending()
                    last_flush = time.monotonic()

    async def run(self) -> None:
        backoff = 1.0
        while not self.stop.is_set():
            if not self.wanted():
                # No watchlist asks for trades (or it is outside the hours): no connection at all.
                await asyncio.sleep(self.idle_check_s)
                continue
            started = time.monotonic()
            try:
                await self._session()
                continue  # closed because nothing is wanted: reopened when something is
            except (OSError, websockets.WebSocketException, TimeoutError) as exc:
                WS_RECONNECTS.inc()
                log.warning("websocket dropped (%s); reconnecting in %.1fs", redact(str(exc)), backoff)
            finally:
                self._flush_pending()
            if self.stop.is_set():
                break
            if time.monotonic() - started > 60:
                backoff = 1.0  # a connection that lived a while resets the back-off
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not crypto
            backoff = min(backoff * 2, 60.0)
