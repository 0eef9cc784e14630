"""The only module that talks to the Kubernetes API, through the official ``kubernetes`` client.

Objects are applied with server-side apply under one field manager, so a second deploy of the
same objects changes nothing and a later deploy takes back only the fields it owns. What to
apply is decided elsewhere; every other module works on plain dicts.
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.discovery import LazyDiscoverer
from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError

from deployer.deadline import Deadline
from deployer.errors import ApplyError, ClusterError
from deployer.objects import Object, ObjectRef
from deployer.request_limit import limit_whole_requests

FIELD_MANAGER = "triton-gke-deployer"


class _MemoryDiscoverer(LazyDiscoverer):
    """The client's lazy discovery without its cache file: the stock one rewrites the whole
    file after each API group it looks up, which costs more than the lookups themselves."""

    def _write_cache(self) -> None:
        pass


class _BoundedClient(DynamicClient):
    """The dynamic client with a time limit on every request it sends, discovery included
    (the stock one sends discovery requests with none)."""

    def __init__(
        self, api_client: client.ApiClient, *, timeout: Callable[[], float], **kwargs: Any
    ) -> None:
        self._timeout = timeout
        super().__init__(api_client, **kwargs)  # type: ignore[no-untyped-call]

    def request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        params.setdefault("_request_timeout", self._timeout())
        return super().request(method, path, body, **params)


class _RetryUnlessTimedOut(urllib3.util.Retry):
    """urllib3's retries of a refused or dropped connection, but never of a request that timed
    out: its time is spent, and a retry would wait as long again, past the deadline."""

    def increment(self, *args: Any, **kwargs: Any) -> _RetryUnlessTimedOut:
        error = kwargs.get("error")
        if isinstance(error, urllib3.exceptions.TimeoutError) and not isinstance(
            error, urllib3.exceptions.NewConnectionError
        ):
            raise error
        return super().increment(*args, **kwargs)


def connect(*, kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """An API client with the in-cluster service account (the Marketplace Job), or else a
    kubeconfig (``--kubeconfig``, ``$KUBECONFIG``, ``~/.kube/config``) for ``make e2e``."""
    try:
        configuration = client.Configuration()
        configuration.retries = _RetryUnlessTimedOut(3)
        if kubeconfig is None and context is None:
            try:
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
                return limit_whole_requests(client.ApiClient(configuration))
            except config.ConfigException:
                pass
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
        return limit_whole_requests(client.ApiClient(configuration))
    except (config.ConfigException, OSError) as exc:
        raise ClusterError(
            f"no cluster credentials: not in a pod, and no usable kubeconfig ({exc}); "
            "pass --kubeconfig FILE or set $KUBECONFIG"
        ) from exc


def api_message(exc: Exception) -> str:
    """The API server's own reason for a failure, from its Status object when it sent one.

    Only the status code, reason and message are kept: a request body (a Secret's data
    included) never reaches a log through here.
    """
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None)
    message = ""
    if isinstance(body, bytes | str) and body:
        try:
            parsed = json.loads(body)
            message = str(parsed.get("message", "")) if isinstance(parsed, dict) else ""
        except ValueError:
            message = ""
    reason = getattr(exc, "reason", None) or type(exc).__name__
    text = f"{status} {reason}" if status else str(reason)
    return f"{text}: {message}" if message else text


class _NotServedError(ClusterError):
    """The cluster does not serve a kind: one of several that discovery reports together."""


@dataclass
class Cluster:
    """One namespace of one cluster, as the deployer sees it."""

    api_client: client.ApiClient
    """A configured client (see :func:`connect`)."""
    namespace: str
    """Where namespaced objects go."""
    field_manager: str = FIELD_MANAGER
    """The server-side apply field manager: one name for every write."""
    deadline: Deadline = field(default_factory=lambda: Deadline(math.inf))
    """When the command must end: every request waits at most the time left (and at most
    ``deadline.MAX_REQUEST_S``), so a stalled connection fails instead of hanging."""
    _dynamic: DynamicClient | None = field(default=None, init=False, repr=False)
    _last_timeout_s: float = field(default=0.0, init=False, repr=False)

    def _request_timeout(self) -> float:
        self._last_timeout_s = self.deadline.request_timeout()
        return self._last_timeout_s

    def _unreachable(self, exc: Exception, *, verb: str = "cannot reach") -> ClusterError:
        """The error for a request that got no answer: a timeout says how long it waited and
        what to check; anything else says what the connection did."""
        host = self.api_client.configuration.host
        reason = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
        if isinstance(reason, urllib3.exceptions.TimeoutError) and not isinstance(
            reason, urllib3.exceptions.NewConnectionError
        ):
            return ClusterError(
                f"the Kubernetes API server at {host} did not answer within "
                f"{self._last_timeout_s:.0f} s: check that it is up (kubectl get --raw /readyz "
                "with the same credentials), that this pod or machine can reach it (network "
                "policy, firewall, proxy), and that the kubeconfig or context names the right "
                "cluster"
            )
        detail = api_message(exc) if isinstance(exc, ApiException) else str(exc)
        return ClusterError(f"{verb} the Kubernetes API at {host}: {detail}")

    @property
    def dynamic(self) -> DynamicClient:
        """The discovery-backed client, created on first use."""
        if self._dynamic is None:
            # A cache path that never exists: discovery starts fresh and stays in memory.
            cache_file = str(Path(tempfile.gettempdir()) / f"deployer-{uuid.uuid4()}.json")
            try:
                self._dynamic = _BoundedClient(
                    self.api_client,
                    timeout=self._request_timeout,
                    cache_file=cache_file,
                    discoverer=_MemoryDiscoverer,
                )
            except (ApiException, urllib3.exceptions.HTTPError) as exc:
                raise self._unreachable(exc) from exc
        return self._dynamic

    @contextlib.contextmanager
    def _connected(self) -> Iterator[None]:
        """Connection failures past the first request (reset, timeout, TLS) become a
        ClusterError naming the API server, never a traceback."""
        try:
            yield
        except urllib3.exceptions.HTTPError as exc:
            raise self._unreachable(exc, verb="lost") from exc

    def close(self) -> None:
        """Release the connection pool."""
        self.api_client.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _resource(self, api_version: str, kind: str) -> Any:
        try:
            with self._connected():
                return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError as exc:
            raise _NotServedError(
                f"the cluster does not serve {kind} ({api_version}): install the CRD or "
                "API that provides it, or turn off the chart feature that renders it"
            ) from exc

    def is_namespaced(self, api_version: str, kind: str) -> bool:
        """Whether the cluster serves this kind per namespace."""
        return bool(self._resource(api_version, kind).namespaced)

    def namespaced_kinds(self, objects: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
        """The ``(group, kind)`` pairs among ``objects`` that are namespaced.

        Raises ClusterError naming every kind the cluster does not serve, before anything
        is applied.
        """
        namespaced: set[tuple[str, str]] = set()
        unknown: list[str] = []
        for ref in sorted({ObjectRef.of(o) for o in objects}):
            try:
                if self.is_namespaced(ref.api_version, ref.kind):
                    namespaced.add((ref.group, ref.kind))
            except _NotServedError as exc:
                unknown.append(str(exc))
        if unknown:
            raise ClusterError("; ".join(sorted(set(unknown))))
        return namespaced

    def _namespace_of(self, ref: ObjectRef) -> str | None:
        if not self.is_namespaced(ref.api_version, ref.kind):
            return None
        return ref.namespace or self.namespace

    def apply(self, obj: Mapping[str, Any]) -> Object:
        """Server-side apply one object (created if missing). Returns the live object."""
        ref = ObjectRef.of(obj)
        resource = self._resource(ref.api_version, ref.kind)
        with self._connected():
            live = self.dynamic.server_side_apply(  # type: ignore[no-untyped-call]
                resource,
                body=dict(obj),
                name=ref.name,
                namespace=self._namespace_of(ref),
                field_manager=self.field_manager,
                force_conflicts=True,
            )
        return dict(live.to_dict())

    def apply_all(self, manifests: Iterable[Mapping[str, Any]]) -> list[Object]:
        """Server-side apply every object in order, going on past failures.

        Returns what the cluster holds for each. Raises ApplyError naming every object that
        failed, after trying them all, so one run reports every problem.
        """
        applied: list[Object] = []
        failures: list[str] = []
        for obj in manifests:
            ref = ObjectRef.of(obj)
            try:
                applied.append(self.apply(obj))
            except (ApiException, DynamicApiError) as exc:
                failures.append(f"{ref}: {api_message(exc)}")
            except ClusterError as exc:
                failures.append(f"{ref}: {exc}")
        if failures:
            raise ApplyError(failures, applied=[str(ObjectRef.of(o)) for o in applied])
        return applied

    def get(self, ref: ObjectRef) -> Object | None:
        """The live object, or None if it does not exist."""
        resource = self._resource(ref.api_version, ref.kind)
        try:
            with self._connected():
                live = resource.get(
                    name=ref.name,
                    namespace=self._namespace_of(ref),
                )
        except DynamicApiError as exc:
            if exc.status == 404:
                return None
            raise ClusterError(f"cannot read {ref}: {api_message(exc)}") from exc
        return dict(live.to_dict())

    def list_objects(
        self,
        api_version: str,
        kind: str,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Object]:
        """Objects of one kind in the namespace, filtered by the selectors."""
        resource = self._resource(api_version, kind)
        namespace = self.namespace if resource.namespaced else None
        try:
            with self._connected():
                found = resource.get(
                    namespace=namespace,
                    label_selector=label_selector,
                    field_selector=field_selector,
                )
        except DynamicApiError as exc:
            raise ClusterError(f"cannot list {kind}: {api_message(exc)}") from exc
        return [dict(item) for item in found.to_dict().get("items") or []]

    def delete(self, ref: ObjectRef) -> bool:
        """Delete one object, its dependents in the background. Returns False if it was
        already gone."""
        resource = self._resource(ref.api_version, ref.kind)
        try:
            with self._connected():
                resource.delete(
                    name=ref.name,
                    namespace=self._namespace_of(ref),
                    body={"propagationPolicy": "Background"},
                )
        except DynamicApiError as exc:
            if exc.status == 404:
                return False
            raise ClusterError(f"cannot delete {ref}: {api_message(exc)}") from exc
        return True

    def merge_patch(
        self, ref: ObjectRef, patch: Mapping[str, Any], *, subresource: str | None = None
    ) -> Object:
        """JSON merge patch of an object, or of its ``status`` subresource."""
        resource = self._resource(ref.api_version, ref.kind)
        # A kind without that subresource takes the patch on the object itself.
        target = resource.subresources.get(subresource, resource) if subresource else resource
        try:
            with self._connected():
                live = self.dynamic.patch(  # type: ignore[no-untyped-call]
                    target,
                    body=dict(patch),
                    name=ref.name,
                    namespace=self._namespace_of(ref),
                    content_type="application/merge-patch+json",
                    field_manager=self.field_manager,
                )
        except DynamicApiError as exc:
            raise ClusterError(f"cannot patch {ref}: {api_message(exc)}") from exc
        return dict(live.to_dict())

    def events_for(self, ref: ObjectRef) -> list[Object]:
        """Events about one object, oldest first."""
        selector = f"involvedObject.name={ref.name},involvedObject.kind={ref.kind}"
        events = self.list_objects("v1", "Event", field_selector=selector)
        mine = [
            e
            for e in events
            if (e.get("involvedObject") or {}).get("name") == ref.name
            and (e.get("involvedObject") or {}).get("kind") == ref.kind
        ]
        return sorted(mine, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))

    def pod_log(self, name: str, *, tail_lines: int = 50) -> str:
        """The end of a pod's log (its first container)."""
        core = client.CoreV1Api(self.api_client)
        try:
            with self._connected():
                log = core.read_namespaced_pod_log(
                    name,
                    self.namespace,
                    tail_lines=tail_lines,
                    _request_timeout=self._request_timeout(),
                )
            return str(log or "")
        except ApiException as exc:
            raise ClusterError(f"cannot read the log of Pod/{name}: {api_message(exc)}") from exc
