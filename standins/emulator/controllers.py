"""The emulator's "controllers": per-kind functions a test installs on
:class:`~standins.emulator.cluster.EmulatedCluster` to play the cluster's part (roll out a
Deployment, give a LoadBalancer an address, run a tester pod to completion).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

LOAD_BALANCER_IP = "203.0.113.10"  # TEST-NET-3: documentation addresses, never routed

Status = dict[str, Any]
Controller = Callable[[Mapping[str, Any]], Status | None]
"""Given a live object, the status the cluster would give it (None: leave it alone)."""


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
