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
- "controllers": per-kind functions a test installs to play the cluster's part (roll out a
  Deployment, give a LoadBalancer an address, run a tester pod to completion);
- failures a test injects for one object, answered with a real Status body;
- faults no real server can be made to show on demand: requests left unanswered (a stalled
  server, for all requests or those about one kind) and connections dropped unanswered.

The server runs in a thread of its own so the synchronous client can call it; test code reads
and writes its state only through the methods of :class:`EmulatedCluster`, which run on the
server's event loop.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import functools
import itertools
import threading
import uuid
import warnings
from collections.abc import Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal import rendering

APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
LOAD_BALANCER_IP = "203.0.113.10"  # TEST-NET-3: documentation addresses, never routed

Status = dict[str, Any]
Controller = Callable[[Mapping[str, Any]], Status | None]
"""Given a live object, the status the cluster would give it (None: leave it alone)."""

T = TypeVar("T")


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
        kind = self._kind_of(request) if request.resource is not None else ""
        if "*" in self.stalled_kinds or kind in self.stalled_kinds:
            await self._released.wait()
            return self._status_error(
                status=503, reason="ServiceUnavailable", message="the emulator stopped"
            )
        return None

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


# --- controllers a test can install ---------------------------------------------------------


def deployment_rolls_out(obj: Mapping[str, Any]) -> Status:
    """A healthy Deployment controller: every replica updated and available at once."""
    replicas = int((obj.get("spec") or {}).get("replicas", 1))
    return {
        "observedGeneration": obj["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
        ],
    }


def deployment_stuck(obj: Mapping[str, Any]) -> Status:
    """A Deployment whose pods never become available (say, no GPU node to schedule on)."""
    status = deployment_rolls_out(obj)
    del status["readyReplicas"], status["availableReplicas"]
    status["unavailableReplicas"] = status["replicas"]
    status["conditions"] = [
        {
            "type": "Available",
            "status": "False",
            "reason": "MinimumReplicasUnavailable",
            "message": "Deployment does not have minimum availability.",
        },
        {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"},
    ]
    return status


def load_balancer_gets_address(obj: Mapping[str, Any]) -> Status | None:
    """The cloud controller: a LoadBalancer Service gets an external address."""
    if (obj.get("spec") or {}).get("type") != "LoadBalancer":
        return None
    return {"loadBalancer": {"ingress": [{"ip": LOAD_BALANCER_IP}]}}


def pod_succeeds(obj: Mapping[str, Any]) -> Status:
    """A pod that runs to completion."""
    return {"phase": "Succeeded"}


HEALTHY = {
    "Deployment": deployment_rolls_out,
    "Service": load_balancer_gets_address,
    "Pod": pod_succeeds,
}
"""Controllers of a cluster where everything goes well."""


# --- the thread that hosts it ---------------------------------------------------------------

# Resources the cluster serves beyond kmock's bundled built-ins: (group, version, plural) →
# discovery entry. The Application CRD is what GKE Marketplace installs in every cluster.
EXTRA_RESOURCES: dict[tuple[str, str, str], dict[str, Any]] = {
    ("app.k8s.io", "v1beta1", "applications"): {
        "kind": "Application",
        "singular": "application",
        "namespaced": True,
        "verbs": {"create", "delete", "get", "list", "patch", "update", "watch"},
        "subresources": {"status"},
    },
}


@functools.cache
def crd_resources(directory: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Discovery entries for every CRD in ``directory`` (the shared Istio, Gateway API and
    monitoring CRDs), so charts that render those kinds deploy against the emulator.
    Read once per session: the files are large."""
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec, names = doc["spec"], doc["spec"]["names"]
            for version in spec.get("versions", []):
                if version.get("served", True):
                    found[(spec["group"], version["name"], names["plural"])] = {
                        "kind": names["kind"],
                        "singular": names.get("singular"),
                        "namespaced": spec.get("scope") == "Namespaced",
                        "verbs": {"create", "delete", "get", "list", "patch", "update", "watch"},
                        "subresources": set((version.get("subresources") or {}).keys()),
                    }
    return found


class EmulatedCluster:
    """An :class:`ApiServer` on a loopback port, served from a background thread."""

    def __init__(self, *, crds_dir: Path | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.server = ApiServer()
        with warnings.catch_warnings():
            # kmock reads its bundled discovery data with a deprecated importlib call.
            warnings.simplefilter("ignore", DeprecationWarning)
            self.server.resources.load_bundled()
        extra = dict(EXTRA_RESOURCES)
        if crds_dir is not None and crds_dir.is_dir():
            extra.update(copy.deepcopy(crd_resources(crds_dir)))
        for (group, version, plural), info in extra.items():
            self.server.resources[kmock.resource(group, version, plural)] = kmock.ResourceInfo(
                **info
            )
        self.url = ""
        self._thread = threading.Thread(target=self._serve, name="kube-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=30) or self._error is not None:
            raise RuntimeError(f"the Kubernetes API emulator did not start: {self._error}")

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with self.server, kmock.Server(self.server) as http:
            self.url = f"http://{http.host}:{http.port}"
            self._ready.set()
            await self._stop.wait()

    def stop(self) -> None:
        """Stop the server and its thread (answering stalled requests first)."""
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.server._released.set)
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def _call(self, function: Callable[[], T]) -> T:
        async def locked() -> T:
            async with self.server._lock:
                return function()

        coro: Coroutine[Any, Any, T] = locked()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    # --- state, read and written on the server's loop -------------------------------------

    def objects(self) -> list[dict[str, Any]]:
        """Every live object, as stored."""
        return self._call(
            lambda: [copy.deepcopy(o.raw) for o in self.server.objects.values() if not o.deleted]
        )

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        """The live object of that kind and name, or None."""
        for obj in self.objects():
            if obj.get("kind") == kind and obj.get("metadata", {}).get("name") == name:
                return obj
        return None

    def requests(self) -> list[tuple[str, str, str]]:
        """Every request so far: ``(method, path, query string)``."""
        return self._call(
            lambda: [
                (str(r.method.value), r.url.path, r.url.query_string) for r in self.server._requests
            ]
        )

    def writes(self) -> list[tuple[str, str]]:
        """Every request that could change state: ``(method, path)``."""
        return [(m, p) for m, p, _ in self.requests() if m in ("POST", "PATCH", "PUT", "DELETE")]

    def set_controllers(self, controllers: Mapping[str, Controller]) -> None:
        """Replace the per-kind controllers."""

        def replace() -> None:
            self.server.controllers.clear()
            self.server.controllers.update(controllers)

        self._call(replace)

    def fail(self, kind: str, name: str, *, status: int = 422, message: str) -> None:
        """Answer every write to that object with an error Status (name "": every list of
        that kind)."""
        self._call(lambda: self.server.failures.__setitem__((kind, name), (status, message)))

    def stall(self, kind: str = "*") -> None:
        """Leave every request about ``kind`` unanswered until the server stops ("*": every
        request, discovery included)."""
        self._call(lambda: self.server.stalled_kinds.add(kind))

    def drop(self, count: int = 1) -> None:
        """Close the connection of the next ``count`` requests without an answer."""
        self._call(lambda: setattr(self.server, "drops", count))

    def set_pod_log(self, name: str, text: str) -> None:
        """What ``pods/NAME/log`` answers."""
        self._call(lambda: self.server.pod_logs.__setitem__(name, text))

    def add(self, path: str, obj: Mapping[str, Any]) -> None:
        """Store an object as if created at ``path`` (``api/v1/namespaces/NS/events``)."""
        parsed = kmock._internal.parsing.parse_path("/" + path.strip("/"))
        resource = kmock.resource(parsed.group, parsed.version, parsed.plural)
        key = (resource, parsed.namespace, obj["metadata"]["name"])
        kind = str(obj.get("kind", ""))
        self._call(
            lambda: self.server._insert(
                key, copy.deepcopy(dict(obj)), kind=kind, manager="test", operation="Update"
            )
        )

    def last_seen(self, kind: str, name: str) -> dict[str, Any] | None:
        """The last state of an object of that kind and name, deleted or not."""

        def find() -> dict[str, Any] | None:
            for obj in self.server.objects.values():
                last = obj.last.raw if not obj.empty else None
                if last and last.get("kind") == kind and last["metadata"].get("name") == name:
                    return copy.deepcopy(dict(last))
            return None

        return self._call(find)
