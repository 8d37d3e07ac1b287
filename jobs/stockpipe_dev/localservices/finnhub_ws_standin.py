"""A local stand-in for Finnhub's trade websocket (`wss://ws.finnhub.io?token=KEY`).

Speaks the real protocol: `{"type":"subscribe","symbol":...}` / `unsubscribe` in, batches of
`{"type":"trade","data":[{"s","p","t","v","c"}]}` and `{"type":"ping"}` out. A bad token gets
`{"type":"error","msg":"Invalid API key"}` and a close. `drop_after` closes each connection after that
many trade messages, so reconnection and resubscription can be tested.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve

from stockpipe.marketdata.synthetic import SyntheticMarket


class FinnhubWebsocketStandin:
    def __init__(self, tokens: set[str], interval_s: float = 0.05, drop_after: int | None = None) -> None:
        self.tokens = tokens
        self.interval_s = interval_s
        self.drop_after = drop_after
        self.market = SyntheticMarket()
        self.connections = 0
        self.subscribe_log: list[tuple[int, str, str]] = []  # (connection, type, symbol)
        self.trades_sent: dict[str, int] = {}
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def _handler(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path if ws.request else "").query)
        if query.get("token", [""])[0] not in self.tokens:
            await ws.send(json.dumps({"type": "error", "msg": "Invalid API key"}))
            await ws.close(code=1008)
            return
        self.connections += 1
        conn = self.connections
        subscribed: set[str] = set()
        sent = 0

        async def reader() -> None:
            async for raw in ws:
                msg = json.loads(raw)
                self.subscribe_log.append((conn, msg.get("type", ""), msg.get("symbol", "")))
                if msg.get("type") == "subscribe":
                    subscribed.add(msg["symbol"])
                elif msg.get("type") == "unsubscribe":
                    subscribed.discard(msg["symbol"])

        task = asyncio.create_task(reader())
        try:
            tick = 0
            while not task.done():
                await asyncio.sleep(self.interval_s)
                tick += 1
                if tick % 20 == 0:
                    await ws.send(json.dumps({"type": "ping"}))
                if not subscribed:
                    continue
                now_ms = int(time.time() * 1000)
                data = []
                for symbol in sorted(subscribed):
                    price = self.market.base_price(symbol)
                    data.append({"s": symbol, "p": price, "t": now_ms, "v": 100, "c": ["1", "12"]})
                    data.append({"s": symbol, "p": price, "t": now_ms, "v": 50, "c": None})  # same ms: seq 1
                    self.trades_sent[symbol] = self.trades_sent.get(symbol, 0) + 2
                await ws.send(json.dumps({"type": "trade", "data": data}))
                sent += 1
                if self.drop_after is not None and sent >= self.drop_after:
                    await ws.close(code=1011, reason="stand-in drop")
                    return
        finally:
            task.cancel()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    def start(self) -> FinnhubWebsocketStandin:
        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._main())

        self._thread = threading.Thread(target=run, name="finnhub-ws-standin", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("websocket stand-in did not start")
        return self

    def stop(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread:
            self._thread.join(timeout=5)
