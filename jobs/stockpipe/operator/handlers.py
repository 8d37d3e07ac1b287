"""kopf handlers: keep the producer's ConfigMap equal to what the TickerWatchlists of its namespace ask for.

Every handler (create, update of the spec, resume after a restart, delete, and a per-watchlist
timer that undoes hand edits) runs the same step: take all watchlists of the namespace from a kopf
index, let `reconcile.plan` decide, write the ConfigMap if it differs, and set this watchlist's
status. One lock per operator serialises the step, so the last writer always saw the newest index
and concurrent handlers cannot put an older union back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf

from stockpipe.operator import kubeapi, reconcile
from stockpipe.operator.settings import OperatorSettings

WATCHLISTS = (reconcile.GROUP, reconcile.VERSION, reconcile.PLURAL)
INDEX_ID = "watchlists"
# Retry a failed step soon: a stale ConfigMap means the producer streams the wrong symbols.
HANDLER_BACKOFF = 5.0

Logger = logging.Logger | logging.LoggerAdapter[Any]


class WatchlistController:
    """The handlers of one operator run: its settings, its kopf settings and its lock."""

    def __init__(self, settings: OperatorSettings, kopf_settings: kopf.OperatorSettings) -> None:
        self.settings = settings
        self.kopf_settings = kopf_settings
        self._lock = asyncio.Lock()

    def register(self, registry: kopf.OperatorRegistry) -> None:
        kopf.index(*WATCHLISTS, id=INDEX_ID, registry=registry)(self.index)
        # One function object for all three: kopf then runs it once when a watchlist created while
        # the operator was down is both new and resumed.
        on_change = self.on_change
        kopf.on.create(*WATCHLISTS, id="render", backoff=HANDLER_BACKOFF, registry=registry)(on_change)
        kopf.on.resume(*WATCHLISTS, id="render", backoff=HANDLER_BACKOFF, registry=registry)(on_change)
        kopf.on.update(*WATCHLISTS, id="render", field="spec", backoff=HANDLER_BACKOFF, registry=registry)(on_change)
        kopf.on.delete(*WATCHLISTS, id="release", backoff=HANDLER_BACKOFF, registry=registry)(self.on_delete)
        kopf.timer(
            *WATCHLISTS,
            id="resync",
            interval=self.settings.resync_seconds,
            initial_delay=self.settings.resync_seconds,
            backoff=HANDLER_BACKOFF,
            registry=registry,
        )(self.on_timer)
        kopf.on.probe(id="watchlists", registry=registry)(self.probe)

    # The index keeps a copy of every watchlist by namespace; kopf fills it before any handler runs.
    def index(self, body: kopf.Body, namespace: str | None, **_: Any) -> dict[str | None, reconcile.WatchlistObject]:
        return {namespace: reconcile.WatchlistObject.from_body(body)}

    # kopf passes the index as the keyword named by its id; kopf's callback protocols do not know
    # that keyword, hence **kwargs.
    async def on_change(
        self, *, body: kopf.Body, status: kopf.Status, patch: kopf.Patch, logger: Logger, **kwargs: Any
    ) -> None:
        await self._step(body, status, patch, logger, kwargs[INDEX_ID], restoring=False)

    async def on_timer(
        self, *, body: kopf.Body, status: kopf.Status, patch: kopf.Patch, logger: Logger, **kwargs: Any
    ) -> None:
        # Between events the ConfigMap only differs if someone edited or deleted it.
        await self._step(body, status, patch, logger, kwargs[INDEX_ID], restoring=True)

    async def on_delete(self, *, body: kopf.Body, logger: Logger, **kwargs: Any) -> None:
        # The body is terminating, so the plan leaves it out; with nothing left it writes the empty list.
        plan = await self._render(body, logger, kwargs[INDEX_ID], restoring=False)
        if plan.configmap is None:
            logger.warning("ConfigMap %s left unchanged on deletion: another watchlist blocks it", self._cm)

    def probe(self, **kwargs: Any) -> int:
        index: kopf.Index[Any, Any] = kwargs[INDEX_ID]
        return sum(len(store) for store in index.values())

    @property
    def _cm(self) -> str:
        return self.settings.configmap_name

    async def _step(
        self,
        body: kopf.Body,
        status: kopf.Status,
        patch: kopf.Patch,
        logger: Logger,
        watchlists: kopf.Index[Any, Any],
        *,
        restoring: bool,
    ) -> None:
        plan = await self._render(body, logger, watchlists, restoring=restoring)
        verdict = plan.verdicts.get(body.meta.name or "")
        if verdict is None:  # terminating meanwhile: the delete handler has the last word
            return
        desired = reconcile.next_status(status, verdict, body.meta.get("generation"), datetime.now(UTC))
        changes = reconcile.status_patch(status, desired)
        if changes is None:
            return
        for key, value in changes.items():
            patch.status[key] = value
        before = reconcile.ready_of(status)
        after = desired["conditions"][-1]
        # Events on transitions only: the timer re-checks every watchlist and must not repeat itself.
        if after["status"] != before:
            if verdict.ready:
                kopf.info(body, reason=verdict.reason, message=verdict.message)
            else:
                kopf.warn(body, reason=verdict.reason, message=verdict.message)

    async def _render(
        self, body: kopf.Body, logger: Logger, watchlists: kopf.Index[Any, Any], *, restoring: bool
    ) -> reconcile.Plan:
        namespace = str(body.meta.namespace)  # TickerWatchlists are namespaced
        async with self._lock:
            seen = {w.name: w for w in watchlists.get(namespace, [])}
            # The handler's own body is at least as new as its index entry.
            current = reconcile.WatchlistObject.from_body(body)
            seen[current.name] = current
            plan = reconcile.plan(seen.values(), namespace=namespace, configmap_name=self._cm)
            if plan.configmap is not None:
                await self._write(body, plan.configmap, logger, restoring=restoring)
        return plan

    async def _write(self, body: kopf.Body, desired: Mapping[str, Any], logger: Logger, *, restoring: bool) -> None:
        namespace = str(desired["metadata"]["namespace"])
        settings = self.kopf_settings
        current = await kubeapi.read_configmap(namespace, self._cm, settings=settings, logger=logger)
        if current is None:
            try:
                await kubeapi.create_configmap(desired, settings=settings, logger=logger)
            except kubeapi.ConflictError:
                raise kopf.TemporaryError(f"ConfigMap {self._cm} appeared meanwhile", delay=1) from None
            what = "recreated" if restoring else "created"
        else:
            changes = reconcile.configmap_patch(current, desired)
            if changes is None:
                return
            await kubeapi.patch_configmap(namespace, self._cm, changes, settings=settings, logger=logger)
            what = "restored" if restoring else "updated"
        logger.info("ConfigMap %s %s", self._cm, what)
        if restoring:
            kopf.warn(body, reason="ConfigMapRestored", message=f"ConfigMap {self._cm} differed; {what} it")
        else:
            kopf.info(body, reason="ConfigMapUpdated", message=f"ConfigMap {self._cm} {what}")
