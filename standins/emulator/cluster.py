"""The API emulator (:class:`~standins.emulator.apiserver.ApiServer`) on a loopback port, served
from a thread of its own so the synchronous client can call it; test code reads and writes its
state only through :class:`EmulatedCluster`, whose methods run on the server's event loop.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import threading
import warnings
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

import kmock
import yaml

from standins.emulator.apiserver import ApiServer
from standins.emulator.controllers import Controller

T = TypeVar("T")

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

    def trickle(self) -> None:
        """Answer every request with a byte at a time, never finishing, until the server stops."""
        self._call(lambda: setattr(self.server, "trickling", True))

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
