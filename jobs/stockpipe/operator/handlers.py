"""kopf handlers: keep the producer's ConfigMap equal to what the TickerWatchlists of its namespace ask for.

Every handler (create, update of the spec, resume after a restart, deletion, and a per-watchlist
timer that undoes hand edits) runs the same step: take all watchlists of the namespace from a kopf
index, let `reconcile.plan` decide, write the ConfigMap if it differs, and set this watchlist's
status. One lock per operator serialises the step, so the last writer always saw the newest index
and concurrent handlers cannot put an older union back.

No finalizer: a deletion is seen as the watch's DELETED event (kopf's event handlers add none). A
finalizer outlives the operator at `helm uninstall` (the chart's Deployment and its TickerWatchlists go
together) and leaves the watchlist, and with it the namespace, Terminating for ever. A deletion the
operator misses while it is down is repaired by the next step of any remaining watchlist (resume, timer);
with none left, the ConfigMap's owners are all gone and the garbage collector removes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import kopf

from stockpipe.operator import kubeapi, reconcile
from stockpipe.operator.settings import OperatorSettings

WATCHLISTS = (reconcile.GROUP, reconcile.VERSION, reconcile.PLURAL)
INDEX_ID = "watchlists"
# Retry a failed step soon: a stale ConfigMap means the producer streams the wrong symbols.
HANDLER_BACKOFF = 5.0
# After a deletion: how long the garbage collector may take to act on the ConfigMap, and how often to write it.
GC_SETTLE_S = 2.0
DELETION_WRITES = 5

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
        kopf.on.event(*WATCHLISTS, id="release", registry=registry)(self.on_event)
        kopf.timer(
            *WATCHLISTS,
            id="resync",
            interval=self.settings.resync_seconds,
            initial_delay=self.settings.resync_seconds,
            backoff=HANDLER_BACKOFF,
            registry=registry,
        )(self.on_timer)
        # kopf gives every timer a finalizer (to stop it before its object goes), with no public switch. This
        # one only re-renders, so it goes without: kopf then never stops it, and on_timer stops itself once
        # its watchlist has left the index.
        spawning = registry._spawning
        spawning._handlers = [
            replace(h, requires_finalizer=False) if h.id == "resync" else h for h in spawning._handlers
        ]
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
        self,
        *,
        body: kopf.Body,
        status: kopf.Status,
        patch: kopf.Patch,
        logger: Logger,
        **kwargs: Any,
    ) -> None:
        # Between events the ConfigMap only differs if someone edited or deleted it.
        if not await self._step(body, status, patch, logger, kwargs[INDEX_ID], restoring=True):
            # Without a finalizer kopf does not stop a deleted object's timer; left running, it would
            # write its last body back for ever. kopf has no public stop for a timer: set its stop flag.
            logger.info("watchlist gone: its resync timer stops")
            kubeapi.stop_timer(kwargs["stopped"])

    async def on_event(self, *, event: Mapping[str, Any], body: kopf.Body, logger: Logger, **kwargs: Any) -> None:
        if event.get("type") != "DELETED":
            return
        # The body is gone, so the plan leaves it out; with nothing left it writes the empty list.
        # When the last owner goes, the garbage collector deletes the ConfigMap at the same moment, before or
        # after this write (it checks only the UID), and kopf never retries an event handler: check that the
        # written list stays, and write it again while it does not.
        for attempt in range(DELETION_WRITES):
            try:
                plan = await self._render(body, logger, kwargs[INDEX_ID], restoring=attempt > 0, deleted=True)
                if plan is None or plan.configmap is None:
                    logger.warning("ConfigMap %s left unchanged on deletion: another watchlist blocks it", self._cm)
                    return
                await asyncio.sleep(GC_SETTLE_S)
                if await self._written(plan.configmap, logger):
                    return
            except (kopf.TemporaryError, kubeapi.ApiError) as exc:  # kopf would not call this handler again
                logger.warning("writing ConfigMap %s on deletion failed (%s); trying again", self._cm, exc)
                await asyncio.sleep(GC_SETTLE_S)
        logger.error("ConfigMap %s still differs after %d writes on deletion", self._cm, DELETION_WRITES)

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
    ) -> bool:
        """One step for this watchlist; False when a timer's watchlist is gone (nothing was written)."""
        plan = await self._render(body, logger, watchlists, restoring=restoring)
        if plan is None:
            return False
        verdict = plan.verdicts.get(body.meta.name or "")
        if verdict is None:  # terminating meanwhile: the delete handler has the last word
            return True
        desired = reconcile.next_status(status, verdict, body.meta.get("generation"), datetime.now(UTC))
        changes = reconcile.status_patch(status, desired)
        if changes is None:
            return True
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
        return True

    async def _render(
        self,
        body: kopf.Body,
        logger: Logger,
        watchlists: kopf.Index[Any, Any],
        *,
        restoring: bool,
        deleted: bool = False,
    ) -> reconcile.Plan | None:
        """The plan, written; None for a timer (restoring) whose watchlist has left the index."""
        namespace = str(body.meta.namespace)  # TickerWatchlists are namespaced
        async with self._lock:
            seen = {w.name: w for w in watchlists.get(namespace, [])}
            current = reconcile.WatchlistObject.from_body(body)
            if restoring and not deleted:
                # A timer's body is the last one kopf saw, possibly of a deleted watchlist: the index decides.
                indexed = seen.get(current.name)
                if indexed is None or indexed.uid != current.uid:
                    return None
            else:
                # An event's body is at least as new as its index entry.
                if deleted:
                    current = replace(current, terminating=True)
                seen[current.name] = current
            plan = reconcile.plan(seen.values(), namespace=namespace, configmap_name=self._cm)
            if plan.configmap is not None:
                await self._write(body, plan.configmap, logger, restoring=restoring)
        return plan

    async def _write(self, body: kopf.Body, desired: Mapping[str, Any], logger: Logger, *, restoring: bool) -> None:
        namespace = str(desired["metadata"]["namespace"])
        settings = self.kopf_settings
        current = await kubeapi.read_configmap(namespace, self._cm, settings=settings, logger=logger)
        if current is not None:
            changes = reconcile.configmap_patch(current, desired)
            if changes is None:
                return
            try:
                await kubeapi.patch_configmap(namespace, self._cm, changes, settings=settings, logger=logger)
                what = "restored" if restoring else "updated"
            except kubeapi.NotFoundError:
                # Gone between the read and the patch: the garbage collector removes it when its last owner goes.
                current = None
        if current is None:
            try:
                await kubeapi.create_configmap(desired, settings=settings, logger=logger)
            except kubeapi.ConflictError:
                raise kopf.TemporaryError(f"ConfigMap {self._cm} appeared meanwhile", delay=1) from None
            what = "recreated" if restoring else "created"
        logger.info("ConfigMap %s %s", self._cm, what)
        if restoring:
            kopf.warn(body, reason="ConfigMapRestored", message=f"ConfigMap {self._cm} differed; {what} it")
        else:
            kopf.info(body, reason="ConfigMapUpdated", message=f"ConfigMap {self._cm} {what}")

    async def _written(self, desired: Mapping[str, Any], logger: Logger) -> bool:
        namespace = str(desired["metadata"]["namespace"])
        current = await kubeapi.read_configmap(namespace, self._cm, settings=self.kopf_settings, logger=logger)
        return current is not None and reconcile.configmap_patch(current, desired) is None
