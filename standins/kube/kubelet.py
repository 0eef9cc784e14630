"""A kubelet stand-in: GKE-shaped nodes and the lives of the pods the real scheduler binds to
them, played through the API. No process runs in a pod.

What it does, as ``../shared/k8s/README.md`` measured a kubelet must:
- registers Nodes (standins.kube.nodes) with GKE's labels, taints and capacity (``nvidia.com/gpu``),
  reports them Ready and renews their Leases, so the node lifecycle controller lifts the
  not-ready taint and never evicts;
- moves each bound pod to Running with container statuses and a loopback pod IP, then Ready
  after the namespace's ``ready_after_s`` (playing an image pull and a model load), or never
  (``never_ready``), or into CrashLoopBackOff (``crash_loop``);
- finishes ``restartPolicy: Never`` pods (``helm test`` hooks) as Succeeded or Failed, as the
  namespace's behaviour says: it decides their outcome, nothing runs;
- finishes graceful deletion (a terminating pod is deleted with grace period 0), or pods would
  stay Terminating for ever;
- gives LoadBalancer Services a loopback address, as a cloud controller would.

It reacts to a watch on pods and services; timed steps go through one timer thread.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from kubernetes import client

from standins.kube.nodes import HEARTBEAT_S, Nodes, NodeSpec, gke_node, now

LOOPBACK_LB_ADDRESS = "127.0.0.1"
"""What LoadBalancer Services get: no test may send traffic to a Service address."""


@dataclass(frozen=True)
class Behaviour:
    """How the pods of one namespace live."""

    ready_after_s: float = 0.3
    """Seconds from Running to Ready (an image pull and a model load, scaled down)."""
    never_ready: bool = False
    """Containers run but readiness never passes (a model that does not load)."""
    crash_loop: bool = False
    """Containers keep exiting: CrashLoopBackOff with a growing restart count."""
    test_pods_succeed: bool = True
    """``restartPolicy: Never`` pods end Succeeded (else Failed with exit code 1)."""
    finish_after_s: float = 0.5
    """Seconds a ``restartPolicy: Never`` pod runs before it ends."""


def add_standard_nodes(kubelet: KubeletStandIn) -> None:
    """The two nodes every local cluster starts with: a CPU node and an ``nvidia-l4`` node
    with one GPU (tests that depend on capacity add node pools of their own)."""
    kubelet.add_node("cpu-node-1", cpu="16", memory="64Gi")
    kubelet.add_node("l4-node-1", accelerator="nvidia-l4", gpus=1, cpu="8", memory="32Gi")


class KubeletStandIn:
    """Plays the kubelet of every node it registered (see the module docstring)."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api_client = api_client
        # Any: the typed client refuses the plain dicts this module sends as bodies.
        self._core: Any = client.CoreV1Api(api_client)
        self._behaviours: dict[str, Behaviour] = {}
        self._default = Behaviour()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_ids = itertools.count()
        self._timer_wake = threading.Condition(self._lock)
        self._started: dict[str, str] = {}
        """Pod uid -> what the stand-in last set it to ("running", "finished", ...)."""
        self._ip_counter = itertools.count(2)
        self._threads: list[threading.Thread] = []
        self._streams: set[Any] = set()
        """Open watch responses, closed by ``stop`` so their threads end at once."""
        self.errors: list[str] = []
        """Anything the stand-in could not do (tests may assert it stays empty)."""
        self._nodes = Nodes(api_client, self.errors)

    # -- public API ------------------------------------------------------------------------

    def start(self) -> None:
        for target in (self._watch_pods, self._watch_services, self._heartbeat, self._run_timers):
            thread = threading.Thread(target=target, name=f"kubelet-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            self._timer_wake.notify_all()
            streams = list(self._streams)
        for stream in streams:
            with contextlib.suppress(Exception):
                stream.shutdown()
        for thread in self._threads:
            thread.join(timeout=2)  # daemon threads: a watch stuck in a read ends with the process

    def add_node(
        self,
        name: str,
        *,
        accelerator: str | None = None,
        gpus: int = 0,
        pool: str | None = None,
        labels: Mapping[str, str] | None = None,
        taints: Sequence[Mapping[str, str]] = (),
        cpu: str = "8",
        memory: str = "32Gi",
        wait: bool = True,
    ) -> str:
        """Register a GKE-shaped node (see :func:`gke_node`); with ``wait``, return once the node
        lifecycle controller has lifted its not-ready taint, so the scheduler can use it."""
        spec = gke_node(
            name,
            accelerator=accelerator,
            gpus=gpus,
            pool=pool,
            labels=labels,
            taints=taints,
            cpu=cpu,
            memory=memory,
        )
        return self.register(spec, wait=wait)

    def register(self, spec: NodeSpec, *, wait: bool = True) -> str:
        """Register ``spec``; with ``wait``, return once the scheduler can use it."""
        return self._nodes.register(spec, wait=wait)

    def remove_node(self, name: str) -> None:
        self._nodes.remove(name)

    def set_behaviour(self, namespace: str, **changes: Any) -> Behaviour:
        """Change how pods of ``namespace`` live from now on (fields of :class:`Behaviour`)."""
        with self._lock:
            behaviour = replace(self._behaviours.get(namespace, self._default), **changes)
            self._behaviours[namespace] = behaviour
        return behaviour

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._nodes.heartbeat()
            except Exception as exc:  # a kubelet that stops heartbeating loses its nodes
                self.errors.append(f"heartbeat: {exc!r}")

    # -- pods ------------------------------------------------------------------------------

    def _behaviour(self, namespace: str) -> Behaviour:
        with self._lock:
            return self._behaviours.get(namespace, self._default)

    def _watch(self, path: str, handle: Callable[[dict[str, Any]], None]) -> None:
        """List then watch ``path`` (raw JSON: the typed client's deserialising is slow),
        calling ``handle`` for every object seen, until stopped; relists when the watch
        expires."""
        while not self._stop.is_set():
            try:
                listing = self._get_json(path)
                for item in listing.get("items", []):
                    handle(item)
                version = listing["metadata"]["resourceVersion"]
                response = self._request(
                    path,
                    [
                        ("watch", "true"),
                        ("resourceVersion", version),
                        ("allowWatchBookmarks", "true"),
                        ("timeoutSeconds", "30"),
                    ],
                    timeout=(5, 60),
                )
                with self._lock:
                    self._streams.add(response)
                buffer = b""
                for chunk in response.stream(65536):
                    if self._stop.is_set():
                        break
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        if event.get("type") in ("ADDED", "MODIFIED"):
                            handle(event["object"])
                        elif event.get("type") == "ERROR":
                            raise RuntimeError(event["object"].get("message", "watch error"))
                with self._lock:
                    self._streams.discard(response)
                response.release_conn()
            except Exception as exc:  # keep playing the kubelet whatever one event did
                if self._stop.is_set():
                    return
                self.errors.append(f"watch {path}: {exc}")
                self._stop.wait(0.5)

    def _request(
        self, path: str, query: list[tuple[str, str]], *, timeout: tuple[float, float]
    ) -> Any:
        """A GET through the client's own connection pool and credentials; the raw (streaming)
        urllib3 response."""
        method, url, headers, body, _ = self._api_client.param_serialize(
            "GET", path, query_params=query, auth_settings=["BearerToken"]
        )
        return self._api_client.call_api(
            method, url, header_params=headers, body=body, _request_timeout=timeout
        ).response

    def _get_json(self, path: str) -> dict[str, Any]:
        response = self._request(path, [], timeout=(5, 30))
        data: dict[str, Any] = json.loads(response.data)
        return data

    def _watch_pods(self) -> None:
        self._watch("/api/v1/pods", self._on_pod)

    def _on_pod(self, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod.get("spec", {})
        node = spec.get("nodeName")
        if node not in self._nodes:
            return
        uid, namespace = meta["uid"], meta["namespace"]
        if meta.get("deletionTimestamp"):
            with self._lock:
                first = self._started.get(uid) != "deleting"
                self._started[uid] = "deleting"
            if first:
                # A kubelet stops the containers within the grace period; ours stop at once.
                self._after(0.1, lambda: self._finish_deletion(namespace, meta["name"], uid))
            return
        phase = pod.get("status", {}).get("phase")
        with self._lock:
            seen = uid in self._started
            if not seen:
                self._started[uid] = "running"
        if seen or phase not in (None, "Pending"):
            return
        behaviour = self._behaviour(namespace)
        self._set_running(pod, behaviour)
        if spec.get("restartPolicy") == "Never":
            self._after(
                behaviour.finish_after_s,
                lambda: self._finish(pod, succeeded=behaviour.test_pods_succeed),
            )
        elif behaviour.crash_loop:
            self._after(behaviour.ready_after_s, lambda: self._crash(pod, restarts=1))
        elif not behaviour.never_ready:
            self._after(behaviour.ready_after_s, lambda: self._set_ready(pod))

    def _container_statuses(
        self, pod: dict[str, Any], *, ready: bool, state: dict[str, Any], restarts: int = 0
    ) -> list[dict[str, Any]]:
        return [
            {
                "name": c["name"],
                "image": c["image"],
                "imageID": f"{c['image']}@sha256:{'0' * 64}",
                "containerID": f"containerd://{pod['metadata']['uid']}-{c['name']}",
                "ready": ready,
                "started": "running" in state,
                "restartCount": restarts,
                "state": state,
            }
            for c in pod["spec"].get("containers", [])
        ]

    def _init_statuses(self, pod: dict[str, Any]) -> list[dict[str, Any]]:
        done = {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now()}}
        return [
            {
                "name": c["name"],
                "image": c["image"],
                "imageID": f"{c['image']}@sha256:{'0' * 64}",
                "ready": True,
                "restartCount": 0,
                "state": done,
            }
            for c in pod["spec"].get("initContainers", [])
        ]

    def _conditions(self, *, ready: bool) -> list[dict[str, Any]]:
        stamp = now()
        value = "True" if ready else "False"
        return [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
            {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
            {"type": "ContainersReady", "status": value, "lastTransitionTime": stamp},
            {"type": "Ready", "status": value, "lastTransitionTime": stamp},
        ]

    def _set_running(self, pod: dict[str, Any], behaviour: Behaviour) -> None:
        number = next(self._ip_counter)
        pod_ip = f"127.0.{number // 250 % 250}.{number % 250 + 2}"
        status = {
            "phase": "Running",
            "hostIP": self._nodes.address(pod["spec"]["nodeName"]),
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": now(),
            "conditions": self._conditions(ready=False),
            "initContainerStatuses": self._init_statuses(pod),
            "containerStatuses": self._container_statuses(
                pod, ready=False, state={"running": {"startedAt": now()}}
            ),
        }
        self._patch_status(pod, status)

    def _set_ready(self, pod: dict[str, Any]) -> None:
        status = {
            "conditions": self._conditions(ready=True),
            "containerStatuses": self._container_statuses(
                pod, ready=True, state={"running": {"startedAt": now()}}
            ),
        }
        self._patch_status(pod, status)

    def _crash(self, pod: dict[str, Any], *, restarts: int) -> None:
        waiting = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off restarting failed container ({restarts} restarts)",
            }
        }
        status = {
            "conditions": self._conditions(ready=False),
            "containerStatuses": self._container_statuses(
                pod, ready=False, state=waiting, restarts=restarts
            ),
        }
        if self._patch_status(pod, status) and restarts < 50:
            self._after(1.0, lambda: self._crash(pod, restarts=restarts + 1))

    def _finish(self, pod: dict[str, Any], *, succeeded: bool) -> None:
        code = 0 if succeeded else 1
        terminated = {
            "terminated": {
                "exitCode": code,
                "reason": "Completed" if succeeded else "Error",
                "finishedAt": now(),
            }
        }
        status = {
            "phase": "Succeeded" if succeeded else "Failed",
            "conditions": self._conditions(ready=False),
            "containerStatuses": self._container_statuses(pod, ready=False, state=terminated),
        }
        self._patch_status(pod, status)

    def _patch_status(self, pod: dict[str, Any], status: dict[str, Any]) -> bool:
        """Patch a pod's status, only if it is still the same pod (its uid is a precondition).
        False where it is gone or was replaced."""
        meta = pod["metadata"]
        body = {"metadata": {"uid": meta["uid"]}, "status": status}
        try:
            self._core.patch_namespaced_pod_status(meta["name"], meta["namespace"], body)
        except client.ApiException as exc:
            if exc.status in (404, 409):
                return False
            self.errors.append(f"status of {meta['namespace']}/{meta['name']}: {exc.status}")
            return False
        return True

    def _finish_deletion(self, namespace: str, name: str, uid: str) -> None:
        with contextlib.suppress(client.ApiException):
            self._core.delete_namespaced_pod(
                name,
                namespace,
                grace_period_seconds=0,
                body=client.V1DeleteOptions(
                    grace_period_seconds=0, preconditions=client.V1Preconditions(uid=uid)
                ),
            )

    # -- services --------------------------------------------------------------------------

    def _watch_services(self) -> None:
        self._watch("/api/v1/services", self._on_service)

    def _on_service(self, service: dict[str, Any]) -> None:
        if service.get("spec", {}).get("type") != "LoadBalancer":
            return
        if service.get("status", {}).get("loadBalancer", {}).get("ingress"):
            return
        meta = service["metadata"]
        body = {"status": {"loadBalancer": {"ingress": [{"ip": LOOPBACK_LB_ADDRESS}]}}}
        with contextlib.suppress(client.ApiException):
            self._core.patch_namespaced_service_status(meta["name"], meta["namespace"], body)

    # -- timers ----------------------------------------------------------------------------

    def _after(self, delay_s: float, action: Callable[[], None]) -> None:
        with self._lock:
            heapq.heappush(
                self._timers, (time.monotonic() + delay_s, next(self._timer_ids), action)
            )
            self._timer_wake.notify()

    def _run_timers(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                while not self._stop.is_set() and (
                    not self._timers or self._timers[0][0] > time.monotonic()
                ):
                    wait = self._timers[0][0] - time.monotonic() if self._timers else None
                    self._timer_wake.wait(timeout=wait)
                if self._stop.is_set():
                    return
                _, _, action = heapq.heappop(self._timers)
            try:
                action()
            except Exception as exc:  # one failed step must not stop the others
                self.errors.append(f"timer: {exc}")
