"""ConfigMap reads and writes through kopf's own API client, and the other kopf internals the operator needs.

kopf has no public client for objects other than the handled ones; its internal one already has
the operator's credentials (in-cluster service account, kubeconfig, or a login handler), retries
and timeouts. This is the only module that imports kopf internals, so an upgrade of the pinned
kopf (1.45.2) is checked here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast
from urllib.parse import quote

import kopf
from kopf._cogs.clients import api, auth, errors
from kopf._cogs.structs import credentials

ApiError = errors.APIError
ConflictError = errors.APIConflictError
NotFoundError = errors.APINotFoundError

_MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


def configmaps_url(namespace: str, name: str | None = None) -> str:
    url = f"/api/v1/namespaces/{quote(namespace, safe='')}/configmaps"
    return f"{url}/{quote(name, safe='')}" if name else url


async def read_configmap(
    namespace: str, name: str, *, settings: kopf.OperatorSettings, logger: logging.Logger | logging.LoggerAdapter[Any]
) -> dict[str, Any] | None:
    """The ConfigMap, or None when there is none."""
    try:
        body = await api.get(configmaps_url(namespace, name), settings=settings, logger=logger)
    except errors.APINotFoundError:
        return None
    return cast(dict[str, Any], body)


async def create_configmap(
    body: Mapping[str, Any], *, settings: kopf.OperatorSettings, logger: logging.Logger | logging.LoggerAdapter[Any]
) -> None:
    namespace = str(body["metadata"]["namespace"])
    await api.post(configmaps_url(namespace), payload=dict(body), settings=settings, logger=logger)


async def patch_configmap(
    namespace: str,
    name: str,
    patch: Mapping[str, Any],
    *,
    settings: kopf.OperatorSettings,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    await api.patch(
        configmaps_url(namespace, name), payload=dict(patch), headers=_MERGE_PATCH, settings=settings, logger=logger
    )


@contextlib.asynccontextmanager
async def connected(info: kopf.ConnectionInfo) -> AsyncIterator[None]:
    """Use these credentials for the calls above outside a running operator (the ConfigMap mirror)."""
    vault = credentials.Vault({"stockpipe": info})
    token = auth.vault_var.set(vault)
    try:
        yield
    finally:
        auth.vault_var.reset(token)
        await vault.close()


def login_without_client(*, settings: kopf.OperatorSettings, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """kopf's own readers of the pod's service account, then of $KUBECONFIG: the stream image carries no
    Kubernetes client library for kopf.login_via_client to use."""
    return kopf.login_with_service_account(settings=settings, **kwargs) or kopf.login_with_kubeconfig(
        settings=settings, **kwargs
    )


def stop_timer(stopped: kopf.DaemonStopped) -> None:
    """Stop the calling timer for good, as kopf does when its object goes (kopf has no public call for it)."""
    from kopf._core.intents.stoppers import DaemonStoppingReason

    stopped._setter.set(reason=DaemonStoppingReason.RESOURCE_DELETED)
