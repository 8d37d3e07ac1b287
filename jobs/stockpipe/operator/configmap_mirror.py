"""Mirror a ConfigMap key into a file, as the kubelet does for a ConfigMap volume, on one machine.

The producer reads its watchlist from a file; in a cluster that file is a ConfigMap volume, which
the kubelet refreshes in place. Without a kubelet (embedded demo, end-to-end tests) this loop plays
its part with the same guarantees the producer relies on:
- a reader sees either the old file or the new one, never half of one (temp file, then os.replace);
- the file changes only when the content does;
- when the ConfigMap or the key is missing, the file stays as it was (the kubelet keeps the last
  content of a mounted ConfigMap that disappears).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import threading
from pathlib import Path

import aiohttp
import kopf

from stockpipe.contracts.watchlist import WATCHLIST_FILE_KEY
from stockpipe.operator import kubeapi

log = logging.getLogger(__name__)

FILE_MODE = 0o644  # the kubelet's default mode for ConfigMap volume files


def write_atomically(path: Path, content: str) -> bool:
    """Replace the file with this content unless it already has it; True when it was written."""
    try:
        if path.read_text(encoding="utf-8") == content:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file sits beside the target: os.replace is atomic only within one filesystem.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def _client_settings(timeout: float) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    # Fail fast and try again on the next poll, instead of kopf's long retry ladder.
    settings.networking.error_backoffs = ()
    settings.networking.request_timeout = timeout
    return settings


async def sync_once(
    namespace: str, name: str, path: Path, *, key: str = WATCHLIST_FILE_KEY, settings: kopf.OperatorSettings
) -> bool:
    """One kubelet sync: copy the key into the file if it changed; True when the file was written."""
    body = await kubeapi.read_configmap(namespace, name, settings=settings, logger=log)
    if body is None:
        log.warning("ConfigMap %s/%s not found; keeping %s as it is", namespace, name, path)
        return False
    data = body.get("data") or {}
    if key not in data:
        log.warning("ConfigMap %s/%s has no key %s; keeping %s as it is", namespace, name, key, path)
        return False
    written = write_atomically(path, str(data[key]))
    if written:
        log.info("ConfigMap %s/%s key %s written to %s", namespace, name, key, path)
    return written


async def mirror_configmap(
    namespace: str,
    name: str,
    path: Path,
    *,
    key: str = WATCHLIST_FILE_KEY,
    interval: float = 1.0,
    connection: kopf.ConnectionInfo | None = None,
    stop: asyncio.Event | threading.Event | None = None,
) -> None:
    """Poll the ConfigMap every `interval` seconds until `stop` is set; survives API errors.

    Credentials: `connection` if given (e.g. a local API server), else kopf's login (service
    account, then kubeconfig).
    """
    settings = _client_settings(timeout=max(interval * 5, 5.0))
    if connection is None:
        connection = kubeapi.login_without_client(logger=log, settings=settings)
    if connection is None:
        raise kopf.LoginError("no Kubernetes credentials: no service account and no kubeconfig")
    async with kubeapi.connected(connection):
        while not (stop is not None and stop.is_set()):
            try:
                await sync_once(namespace, name, path, key=key, settings=settings)
            except (kubeapi.ApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                # A restarting API server or a full disk must not end the mirror; the next poll retries.
                log.warning("mirroring ConfigMap %s/%s failed: %r", namespace, name, exc)
            await asyncio.sleep(interval)
