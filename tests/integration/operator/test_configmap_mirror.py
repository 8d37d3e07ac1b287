"""The ConfigMap mirror (kubelet stand-in) against kmock, alone and behind the real operator."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import kopf
import pytest

from stockpipe.contracts.watchlist import WATCHLIST_FILE_KEY, Watchlist
from stockpipe.operator.configmap_mirror import mirror_configmap
from stockpipe_dev.localservices.process import free_port
from tests.integration.operator.kube_emulator import ApiServerThread, Kube, wait_for
from tests.integration.operator.operator_harness import (
    CM_PATH,
    CONFIGMAP,
    NAMESPACE,
    TW_PATH,
    RunningOperator,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CM_LIST = f"/api/v1/namespaces/{NAMESPACE}/configmaps"


class Mirror:
    def __init__(self, server: str, path: Path, interval: float = 0.05) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        coro = mirror_configmap(
            NAMESPACE, CONFIGMAP, path, interval=interval, connection=kopf.ConnectionInfo(server=server), stop=self.stop
        )
        self.thread = threading.Thread(target=self._run, args=(coro,), daemon=True)

    def _run(self, coro: object) -> None:
        try:
            asyncio.run(coro)  # type: ignore[arg-type]
        except BaseException as exc:
            self.errors.append(exc)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the mirror did not stop"
        assert not self.errors, self.errors


@pytest.fixture
def start_mirror() -> Iterator[Callable[[str, Path], Mirror]]:
    mirrors: list[Mirror] = []

    def start(server: str, path: Path) -> Mirror:
        mirror = Mirror(server, path)
        mirror.thread.start()
        mirrors.append(mirror)
        return mirror

    yield start
    for mirror in mirrors:
        mirror.close()


def configmap(content: str | None) -> dict[str, object]:
    data = {WATCHLIST_FILE_KEY: content} if content is not None else {"other": "x"}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CONFIGMAP}, "data": data}


def content_is(path: Path, expected: str) -> Callable[[], bool]:
    return lambda: path.exists() and path.read_text(encoding="utf-8") == expected


def test_the_file_follows_the_configmap_like_a_volume(
    apiserver: ApiServerThread, kube: Kube, tmp_path: Path, start_mirror: Callable[[str, Path], Mirror]
) -> None:
    target = tmp_path / "config" / "watchlist.json"
    start_mirror(apiserver.url, target)
    first = Watchlist(symbols=["AAPL"]).to_json()
    kube.create(CM_LIST, configmap(first))
    wait_for("first content", content_is(target, first))

    second = Watchlist(symbols=["AAPL", "MSFT"], poll_interval_seconds=30).to_json()
    kube.merge_patch(CM_PATH, {"data": {WATCHLIST_FILE_KEY: second}})
    wait_for("second content", content_is(target, second))

    # Key or ConfigMap gone: the kubelet keeps the last content, and so does the mirror.
    kube.merge_patch(CM_PATH, {"data": {WATCHLIST_FILE_KEY: None, "other": "x"}})
    kube.delete(CM_PATH)
    kube.create(CM_LIST, configmap(None))
    kube.delete(CM_PATH)
    threading.Event().wait(0.5)  # several polls
    assert target.read_text(encoding="utf-8") == second

    third = Watchlist(symbols=[]).to_json()
    kube.create(CM_LIST, configmap(third))
    wait_for("third content", content_is(target, third))


def test_readers_never_see_a_half_written_file(
    apiserver: ApiServerThread, kube: Kube, tmp_path: Path, start_mirror: Callable[[str, Path], Mirror]
) -> None:
    target = tmp_path / "watchlist.json"
    start_mirror(apiserver.url, target)
    # Large versions (about 200 KB each) make a torn read likely if writes were not atomic.
    versions = [json.dumps({"version": i, "padding": "x" * 200_000}) for i in range(15)]
    kube.create(CM_LIST, configmap(versions[0]))
    wait_for("first version", content_is(target, versions[0]))

    seen: set[int] = set()
    torn: list[str] = []
    done = threading.Event()

    def read_constantly() -> None:
        while not done.is_set():
            text = target.read_text(encoding="utf-8")
            try:
                seen.add(json.loads(text)["version"])
            except ValueError:
                torn.append(text[:80])

    reader = threading.Thread(target=read_constantly, daemon=True)
    reader.start()
    for version in versions[1:]:
        kube.merge_patch(CM_PATH, {"data": {WATCHLIST_FILE_KEY: version}})
        wait_for("the version", content_is(target, version))
    done.set()
    reader.join(10)
    assert torn == []
    assert len(seen) > 1


def test_an_unreachable_api_server_does_not_end_the_mirror(
    tmp_path: Path, start_mirror: Callable[[str, Path], Mirror]
) -> None:
    target = tmp_path / "watchlist.json"
    target.write_text("last known\n", encoding="utf-8")
    mirror = start_mirror(f"http://127.0.0.1:{free_port()}", target)
    threading.Event().wait(0.5)
    assert mirror.thread.is_alive()
    assert target.read_text(encoding="utf-8") == "last known\n"


def test_operator_and_mirror_deliver_the_watchlist_file(
    apiserver: ApiServerThread,
    kube: Kube,
    tmp_path: Path,
    start_operator: Callable[[], RunningOperator],
    start_mirror: Callable[[str, Path], Mirror],
) -> None:
    start_operator()
    target = tmp_path / "watchlist.json"
    start_mirror(apiserver.url, target)
    kube.create(
        TW_PATH,
        {
            "apiVersion": "stockpipe.io/v1alpha1",
            "kind": "TickerWatchlist",
            "metadata": {"name": "tech"},
            "spec": {"symbols": ["MSFT", "AAPL"], "sources": ["trades"]},
        },
    )

    def streamed() -> tuple[list[str], list[str]] | None:
        if not target.exists():
            return None
        watchlist = Watchlist.from_file(target)
        return watchlist.symbols_for("trades"), watchlist.symbols_for("quotes")

    wait_for("the producer's file", lambda: streamed() == (["AAPL", "MSFT"], []))

    kube.delete(f"{TW_PATH}/tech")
    wait_for("the empty watchlist", lambda: Watchlist.from_file(target).symbols == [])
