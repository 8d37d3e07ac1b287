"""A kmock Kubernetes emulator closer to a real API server, run in its own thread, and a small sync client.

kmock (0.8) stores objects and serves list/watch/get/create/patch/delete, but as plain JSON: no
uid, generation, resourceVersion or creationTimestamp, no generateName, no status subresource
semantics, no schema. The operator depends on each of those, so this subclass adds them:
- create: name from generateName, uid, creationTimestamp, generation 1, resourceVersion; the CRD's
  defaults and schema (refused with 422 Invalid, like admission); status dropped when the resource
  has a status subresource;
- delete of an object with finalizers: deletionTimestamp and a new resourceVersion;
- patch (merge or JSON patch with `test`): a failed test is 422 like the server; on the main
  resource status changes are ignored, on /status only status changes count; generation grows when
  anything but metadata and status changes; a no-op patch changes nothing and sends no watch event;
- resourceVersion grows on every write;
- a watch does not miss events that happen while it starts.
It does not garbage-collect by ownerReferences (neither does kmock): tests check the references.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import random
import string
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock

Validator = Callable[[dict[str, Any]], list[str]]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesEmulator):
    validators: dict[str, Validator] = attrs.field(factory=dict)  # by plural name
    defaulters: dict[str, Callable[[dict[str, Any]], object]] = attrs.field(factory=dict)  # fill in place
    with_status: set[str] = attrs.field(factory=set)  # plurals with a status subresource
    _versions: Iterator[int] = attrs.field(factory=lambda: itertools.count(1000), init=False)
    _last_version: int = attrs.field(default=999, init=False)
    _writes: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.resource is None or request.action not in {
            kmock.action.CREATE,
            kmock.action.UPDATE,
            kmock.action.DELETE,
        }:
            return await super()._handle(request)
        # One write at a time, so that what is validated is what gets stored.
        async with self._writes:
            try:
                if request.action == kmock.action.DELETE:
                    marked = await self._mark_deleted(request)
                    if marked is not None:
                        return aiohttp.web.json_response(marked)
                    return await super()._handle(request)
                if request.action == kmock.action.CREATE:
                    data: Any = self._admit_create(request)
                else:
                    data = self._admit_patch(request)
                    if data is None:  # a no-op: answer with the object as it is
                        key = (request.resource, request.namespace, request.name)
                        return aiohttp.web.json_response(self.objects[key].raw)
            except kmock.KubernetesError as exc:
                return await self._render_error(exc)
            # kmock's views select among the requests it logged, by identity: log the rewritten one instead.
            rewritten = attrs.evolve(request, data=data)
            self._requests[:] = [rewritten if r is request else r for r in self._requests]
            return await super()._handle(rewritten)

    def _next_version(self) -> str:
        self._last_version = next(self._versions)
        return str(self._last_version)

    async def _mark_deleted(self, request: kmock.Request) -> dict[str, Any] | None:
        """Deleting an object with finalizers only sets deletionTimestamp, with a new resourceVersion."""
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            raise kmock.KubernetesObjectNotFoundError()
        meta = self.objects[key].raw.get("metadata", {})
        if not meta.get("finalizers") or meta.get("deletionTimestamp"):
            return None  # kmock deletes it, or it is already terminating
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        async with self._lock:
            self.objects[key].patch({"metadata": {"deletionTimestamp": now, "resourceVersion": self._next_version()}})
            raw = self.objects[key].raw
            await self._buses[request.resource].put({"type": "MODIFIED", "object": raw})
        return raw

    async def _serve_list(self, request: kmock.Request) -> Any:
        # A real resourceVersion (kmock says "..."), so that the watch that follows can start from it.
        listing = await super()._serve_list(request)
        listing["metadata"] = {"resourceVersion": str(self._last_version)}
        return listing

    def _admit_create(self, request: kmock.Request) -> dict[str, Any]:
        assert request.resource is not None
        body = copy.deepcopy(request.data)
        if not isinstance(body, dict):
            raise kmock.KubernetesError(status=400, reason="BadRequest", message="not a JSON object")
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        if not meta.get("name"):
            raise kmock.KubernetesError(status=422, reason="Invalid", message="metadata.name: Required value")
        if request.namespace:
            meta["namespace"] = request.namespace
        meta.update(
            uid=str(uuid.uuid4()),
            creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            generation=1,
            resourceVersion=self._next_version(),
        )
        plural = request.resource.plural or ""
        if plural in self.with_status:
            body.pop("status", None)
        self._validate(plural, body)
        return body

    def _admit_patch(self, request: kmock.Request) -> list[dict[str, Any]] | None:
        assert request.resource is not None
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            raise kmock.KubernetesObjectNotFoundError()
        old = copy.deepcopy(self.objects[key].raw)
        try:
            if isinstance(request.data, list):
                new = jsonpatch.apply_patch(old, request.data, in_place=False)
            else:
                new = merge_patch(old, request.data)
        except jsonpatch.JsonPatchTestFailed as exc:
            raise kmock.KubernetesError(status=422, reason="Invalid", message=f"test failed: {exc}") from None
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise kmock.KubernetesError(status=422, reason="Invalid", message=str(exc)) from None
        plural = request.resource.plural or ""
        if plural in self.with_status:
            # The main resource ignores status; /status ignores everything else.
            status = new.get("status") if request.subresource == "status" else old.get("status")
            kept = old if request.subresource == "status" else new
            new = {k: copy.deepcopy(v) for k, v in kept.items() if k != "status"}
            if status is not None:
                new["status"] = status
        for fixed in ("uid", "name", "namespace", "creationTimestamp", "generation", "resourceVersion"):
            if fixed in old["metadata"]:
                new["metadata"][fixed] = old["metadata"][fixed]
        if new == old:
            return None
        if {k: v for k, v in new.items() if k not in {"metadata", "status"}} != {
            k: v for k, v in old.items() if k not in {"metadata", "status"}
        }:
            new["metadata"]["generation"] = old["metadata"].get("generation", 0) + 1
        new["metadata"]["resourceVersion"] = self._next_version()
        self._validate(plural, new)
        return jsonpatch.make_patch(old, new).patch  # type: ignore[no-any-return]

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        # kmock replays every object as ADDED, releases its lock, then joins the event bus: an event
        # in between is lost, and a client that listed first sees stale duplicates. Like a real
        # server, start from the listed resourceVersion (only newer objects are replayed; deletions
        # in between are not, there is no event history) and join the bus under the lock.
        yield b""
        assert request.resource is not None
        since = request.params.get("resourceVersion", "")
        newer_than = int(since) if since.isdigit() else -1
        bus = self._buses[request.resource]
        async with self._lock:
            mark = await bus.mark()
            events = [
                {"type": "ADDED", "object": obj.raw}
                for (resource, namespace, name), obj in self.objects.items()
                if not obj.deleted
                and self._watched(request, resource, namespace, name)
                and int(obj.raw.get("metadata", {}).get("resourceVersion", 0)) > newer_than
            ]
        try:
            for event in events:
                yield event
            async for event in bus.stream(since=mark):
                meta = event.get("object", {}).get("metadata", {})
                if self._watched(request, request.resource, meta.get("namespace"), meta.get("name")):
                    yield event
        finally:
            await bus.unmark(mark)

    @staticmethod
    def _watched(request: kmock.Request, resource: Any, namespace: str | None, name: str | None) -> bool:
        return (
            resource == request.resource
            and (request.namespace is None or namespace == request.namespace)
            and (request.name is None or name == request.name)
        )

    def _validate(self, plural: str, body: dict[str, Any]) -> None:
        """Default in place, then validate, like the API server's admission."""
        if plural in self.defaulters:
            self.defaulters[plural](body)
        validator = self.validators.get(plural)
        errors = validator(body) if validator else []
        if errors:
            raise kmock.KubernetesError(
                status=422, reason="Invalid", message="; ".join(errors), details={"causes": errors}
            )


class ApiServerThread:
    """The emulator on a loopback port, served from its own event loop in a daemon thread."""

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="kmock-apiserver", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with self.server, kmock.Server(self.server, host="127.0.0.1") as http:
            self.url = str(http.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> ApiServerThread:
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"the API server emulator did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


class KubeError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {body.get('reason')}: {body.get('message')}")
        self.status = status
        self.body = body


class Kube:
    """What kubectl does, over HTTP: enough to create, edit, read and delete objects in tests."""

    def __init__(self, url: str) -> None:
        self.url = url

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": content_type}
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310  (the loopback emulator)
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise KubeError(exc.code, json.loads(exc.read() or b"{}")) from None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def get_or_none(self, path: str) -> Any:
        try:
            return self.get(path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.request("POST", path, body)

    def merge_patch(self, path: str, patch: Mapping[str, Any]) -> Any:
        return self.request("PATCH", path, patch, "application/merge-patch+json")

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll until probe() returns something truthy; fail with the last value after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")
