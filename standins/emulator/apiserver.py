"""A Kubernetes API emulator on loopback that the real ``kubernetes`` client talks to.

It is kmock 0.8's ``KubernetesEmulator`` (HTTP server, URL parsing, discovery, object store),
made to behave like a real API server where the deployer relies on it:

- server-side apply (PATCH ``application/apply-patch+yaml``) creates a missing object and
  otherwise replaces the applied fields, keeping what other writes own (status, fields set by
  merge patches); an apply that changes nothing changes nothing, resourceVersion included;
- create answers 201; every object gets a uid, a resourceVersion bumped on each change, and a
  generation bumped on changes outside metadata and status;
- ``/status`` subresource patches touch only status; a list honours equality label selectors;
  ``pods/NAME/log`` answers plain text;
- controllers (:mod:`standins.emulator.controllers`): per-kind functions a test installs to
  play the cluster's part (roll out a Deployment, give a LoadBalancer an address, run a tester pod);
- failures a test injects for one object, answered with a real Status body;
- faults no real server can be made to show on demand: requests left unanswered (a stalled
  server, for all requests or those about one kind), answers that trickle in a byte at a time
  and never end, and connections dropped unanswered.

Tests run it through :class:`~standins.emulator.cluster.EmulatedCluster`, which serves it
from a thread of its own and reads and writes its state on the server's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import itertools
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import rendering

from standins.emulator.controllers import Controller

APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
TRICKLE_S = 0.5
"""How often a trickling answer sends a byte."""


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _leaf_paths(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            yield from _leaf_paths(value, (*prefix, key))
        else:
            yield (*prefix, key)


def _lookup(tree: Mapping[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    node: Any = tree
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _store(tree: dict[str, Any], path: tuple[str, ...], *, value: Any) -> None:
    node = tree
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = copy.deepcopy(value)


def _merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch."""
    out = copy.deepcopy(dict(target))
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge_patch(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _spec_part(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What a change of bumps ``metadata.generation``: all but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _matches(labels: Mapping[str, str], selector: str) -> bool:
    """Equality selectors only (``a=b,c==d``): all the deployer sends."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, _, value = term.partition("=")
        if labels.get(key) != value.lstrip("="):
            return False
    return True


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesEmulator):
    """kmock's emulator with the behaviour of a real API server listed in the module doc."""

    controllers: dict[str, Controller] = attrs.field(factory=dict)
    pod_logs: dict[str, str] = attrs.field(factory=dict)
    failures: dict[tuple[str, str], tuple[int, str]] = attrs.field(factory=dict)
    """(kind, name) → (status, message) answered to writes; name "" means lists of the kind."""
    stalled_kinds: set[str] = attrs.field(factory=set)
    """Requests about these kinds get no answer until the server stops; "*": every request."""
    drops: int = 0
    trickling: bool = False
    """Answer every request with a byte of whitespace every TRICKLE_S, never ending."""
    """How many of the next requests have their connection closed with no answer."""
    _released: asyncio.Event = attrs.field(factory=asyncio.Event)
    _versions: Iterator[int] = attrs.field(factory=lambda: itertools.count(1000))
    _update_owned: dict[Any, dict[str, Any]] = attrs.field(factory=dict)

    def _status_error(self, *, status: int, reason: str, message: str) -> aiohttp.web.Response:
        return aiohttp.web.json_response(
            {
                "apiVersion": "v1",
                "kind": "Status",
                "metadata": {},
                "status": "Failure",
                "code": status,
                "reason": reason,
                "message": message,
            },
            status=status,
        )

    def _kind_of(self, request: rendering.Request) -> str:
        assert request.resource is not None
        # ResourcesArray creates an entry on a missing key, so look before reading.
        info = self.resources[request.resource] if request.resource in self.resources else None  # noqa: SIM401
        return str(info.kind) if info is not None and info.kind else str(request.resource.plural)

    def _stamp(self, obj: dict[str, Any], *, manager: str, operation: str) -> None:
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(next(self._versions))
        # One entry per manager and operation, as a real server keeps them.
        entries = [
            m
            for m in meta.get("managedFields", [])
            if (m.get("manager"), m.get("operation")) != (manager, operation)
        ]
        entries.append({"manager": manager, "operation": operation, "time": _now()})
        meta["managedFields"] = entries

    def _run_controller(self, key: Any, kind: str) -> None:
        controller = self.controllers.get(kind)
        if controller is None or key not in self._objects or self._objects[key].deleted:
            return
        live = copy.deepcopy(self._objects[key].raw)
        status = controller(live)
        if status is not None and status != live.get("status"):
            live["status"] = status
            live["metadata"]["resourceVersion"] = str(next(self._versions))
            self._objects[key].create(live)

    @staticmethod
    def _key(request: rendering.Request, name: str | None = None) -> Any:
        return (request.resource, request.namespace, name or request.name)

    async def _fault(self, request: rendering.Request) -> aiohttp.web.StreamResponse | None:
        """Drop or stall this request when the test asked for it."""
        if self.drops > 0:
            self.drops -= 1
            raw = request._raw_request
            assert raw is not None and raw.transport is not None
            raw.transport.abort()
            return aiohttp.web.Response()  # never sent: the connection is gone
        if self.trickling:
            return await self._trickle(request)
        kind = self._kind_of(request) if request.resource is not None else ""
        if "*" in self.stalled_kinds or kind in self.stalled_kinds:
            await self._released.wait()
            return self._status_error(
                status=503, reason="ServiceUnavailable", message="the emulator stopped"
            )
        return None

    async def _trickle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        """Headers at once, then a space (JSON's leading whitespace) every TRICKLE_S until
        the client gives up or the server stops: no read ever waits long."""
        raw = request._raw_request
        assert raw is not None
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(raw)
        try:
            while not self._released.is_set():
                await response.write(b" ")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._released.wait(), TRICKLE_S)
            await response.write(b"{}")
            await response.write_eof()
        except ConnectionError:
            pass  # the client gave up
        return response

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        fault = await self._fault(request)
        if fault is not None:
            return fault
        if request.resource is None:
            return await super()._handle(request)
        kind = self._kind_of(request)
        name = request.name or (request.data or {}).get("metadata", {}).get("name")
        if request.method in (kmock.method.POST, kmock.method.PATCH) and name:
            injected = self.failures.get((kind, name))
            if injected is not None:
                code, message = injected
                return self._status_error(status=code, reason="Injected", message=message)
        if request.action == kmock.action.LIST and (kind, "") in self.failures:
            code, message = self.failures[(kind, "")]
            return self._status_error(status=code, reason="Injected", message=message)
        content_type = request.headers.get("Content-Type", "")
        async with self._lock:
            if request.method == kmock.method.PATCH and APPLY_CONTENT_TYPE in content_type:
                return self._apply(request, kind)
            if request.action == kmock.action.CREATE:
                return self._create(request, kind)
            if request.action == kmock.action.UPDATE:
                return self._patch(request, kind)
            if request.action == kmock.action.LIST and request.resource.plural:
                return self._list(request, kind)
            if request.action == kmock.action.FETCH and request.subresource == "log":
                log = self.pod_logs.get(str(request.name), "")
                return aiohttp.web.Response(text=log, content_type="text/plain")
        return await super()._handle(request)

    def _create(self, request: rendering.Request, kind: str) -> aiohttp.web.StreamResponse:
        body = copy.deepcopy(request.data or {})
        name = body.get("metadata", {}).get("name")
        key = self._key(request, name)
        if key in self._objects and not self._objects[key].deleted:
            return self._status_error(
                status=409, reason="AlreadyExists", message=f'{kind} "{name}" already exists'
            )
        self._insert(key, body, kind=kind, manager="kubectl-create", operation="Update")
        return aiohttp.web.json_response(self._objects[key].raw, status=201)

    def _insert(
        self, key: Any, body: dict[str, Any], *, kind: str, manager: str, operation: str
    ) -> None:
        resource = key[0]
        body["apiVersion"] = "/".join(p for p in (resource.group, resource.version) if p)
        body["kind"] = kind
        meta = body.setdefault("metadata", {})
        if key[1] is not None:
            meta["namespace"] = key[1]
        meta.update(uid=str(uuid.uuid4()), generation=1, creationTimestamp=_now())
        self._stamp(body, manager=manager, operation=operation)
        if key in self._objects:
            self._objects[key].create(body)
        else:
            self._objects[key] = body
        self._update_owned.pop(key, None)
        self._run_controller(key, kind)

    def _apply(self, request: rendering.Request, kind: str) -> aiohttp.web.StreamResponse:
        manager = request.params.get("fieldManager")
        if not manager:
            return self._status_error(
                status=422, reason="Invalid", message="fieldManager is required for apply requests"
            )
        applied = copy.deepcopy(request.data or {})
        applied.pop("status", None)  # status is written through its subresource only
        key = self._key(request)
        if key not in self._objects or self._objects[key].deleted:
            self._insert(key, applied, kind=kind, manager=manager, operation="Apply")
            return aiohttp.web.json_response(self._objects[key].raw, status=201)
        live = self._objects[key].raw
        updated = copy.deepcopy(applied)
        # Fields another write owns survive an apply that leaves them out.
        owned = self._update_owned.get(key, {})
        for path in list(_leaf_paths(owned)):
            given, _ = _lookup(applied, path)
            present, value = _lookup(live, path)
            if not given and present:
                _store(updated, path, value=value)
        meta = updated.setdefault("metadata", {})
        for field in ("uid", "creationTimestamp", "generation", "resourceVersion", "namespace"):
            if field in live["metadata"]:
                meta[field] = live["metadata"][field]
        meta["managedFields"] = copy.deepcopy(live["metadata"].get("managedFields", []))
        if "status" in live:
            updated["status"] = copy.deepcopy(live["status"])
        if updated == live:
            return aiohttp.web.json_response(live)  # nothing changed: no new resourceVersion
        if _spec_part(updated) != _spec_part(live):
            meta["generation"] = int(meta.get("generation", 1)) + 1
        self._stamp(updated, manager=manager, operation="Apply")
        self._objects[key].create(updated)
        self._run_controller(key, kind)
        return aiohttp.web.json_response(self._objects[key].raw)

    def _patch(self, request: rendering.Request, kind: str) -> aiohttp.web.StreamResponse:
        key = self._key(request)
        if key not in self._objects or self._objects[key].deleted:
            return self._status_error(
                status=404, reason="NotFound", message=f'{kind} "{request.name}" not found'
            )
        live = self._objects[key].raw
        patch = dict(request.data or {})
        if request.subresource == "status":
            patch = {"status": patch.get("status")} if "status" in patch else {}
        else:
            patch.pop("status", None)
            self._update_owned[key] = _merge_patch(self._update_owned.get(key, {}), patch)
        updated = _merge_patch(live, patch)
        if updated == live:
            return aiohttp.web.json_response(live)
        if _spec_part(updated) != _spec_part(live):
            updated["metadata"]["generation"] = int(live["metadata"].get("generation", 1)) + 1
        manager = request.params.get("fieldManager", "unknown")
        self._stamp(updated, manager=manager, operation="Update")
        self._objects[key].create(updated)
        if request.subresource != "status":
            self._run_controller(key, kind)
        return aiohttp.web.json_response(self._objects[key].raw)

    def _list(self, request: rendering.Request, kind: str) -> aiohttp.web.StreamResponse:
        selector = request.params.get("labelSelector", "")
        items = [
            obj.raw
            for (resource, namespace, _), obj in self._objects.items()
            if resource == request.resource
            and not obj.deleted
            and (request.namespace is None or namespace == request.namespace)
            and _matches(obj.raw.get("metadata", {}).get("labels") or {}, selector)
        ]
        assert request.resource is not None
        group_version = "/".join(p for p in (request.resource.group, request.resource.version) if p)
        return aiohttp.web.json_response(
            {
                "apiVersion": group_version,
                "kind": f"{kind}List",
                "metadata": {"resourceVersion": str(next(self._versions))},
                "items": items,
            }
        )
