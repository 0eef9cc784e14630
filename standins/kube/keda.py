"""The HorizontalPodAutoscaler KEDA's operator creates for a ScaledObject with Prometheus
triggers, so the tests can let the real HPA controller drive it: KEDA's operator itself cannot
run here (its image cannot be pulled, and its scalers would query Google's API).

Transcribed from kedacore/keda v2.20.2 (68a5b502), the release whose CRDs standins/kube/crds
holds:
- ``controllers/keda/hpa.go`` ``newHPAForScaledObject``: name from
  ``advanced.horizontalPodAutoscalerConfig.name``, else ``keda-hpa-<ScaledObject>``; behaviour
  from ``advanced.horizontalPodAutoscalerConfig.behavior``; labels ``app.kubernetes.io/name``
  (the HPA's name, cut to 63), ``app.kubernetes.io/part-of`` (the ScaledObject),
  ``app.kubernetes.io/managed-by: keda-operator`` plus the ScaledObject's own; the ScaledObject
  as controller owner;
- ``getScaledObjectMetricSpecs``: each External metric selected by
  ``scaledobject.keda.sh/name: <ScaledObject>``;
- ``apis/keda/v1alpha1/scaledobject_types.go``: ``minReplicas`` is ``minReplicaCount`` when
  above 0, else 1; ``maxReplicas`` is ``maxReplicaCount``, else 100;
- ``pkg/scalers/prometheus_scaler.go`` and ``scaler.go``: the metric is named
  ``s<trigger index>-prometheus``, its target ``AverageValue`` (unless the trigger's
  ``metricType`` says ``Value``) of the threshold as a milli-quantity.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OWNER_LABEL = "scaledobject.keda.sh/name"
KEDA_VERSION = "2.20.2"


def _milli(value: float) -> str:
    milli = round(value * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def hpa_for(scaled_object: Mapping[str, Any]) -> dict[str, Any]:
    """The HPA KEDA's operator would create for ``scaled_object`` (as read from the server, so
    with its uid). Raises ValueError for a trigger other than ``prometheus``."""
    meta, spec = scaled_object["metadata"], scaled_object["spec"]
    config = (spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}
    name = config.get("name") or f"keda-hpa-{meta['name']}"
    metrics = []
    for index, trigger in enumerate(spec["triggers"]):
        if trigger["type"] != "prometheus":
            raise ValueError(f"trigger {index} is {trigger['type']}: only prometheus is here")
        target_type = trigger.get("metricType") or "AverageValue"
        threshold = _milli(float(trigger["metadata"]["threshold"]))
        key = "averageValue" if target_type == "AverageValue" else "value"
        metrics.append(
            {
                "type": "External",
                "external": {
                    "metric": {
                        "name": f"s{index}-prometheus",
                        "selector": {"matchLabels": {OWNER_LABEL: meta["name"]}},
                    },
                    "target": {"type": target_type, key: threshold},
                },
            }
        )
    minimum = spec.get("minReplicaCount") or 0
    target = spec["scaleTargetRef"]
    hpa: dict[str, Any] = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": {
                "app.kubernetes.io/name": name[:63].rstrip("-."),
                "app.kubernetes.io/version": KEDA_VERSION,
                "app.kubernetes.io/part-of": meta["name"],
                "app.kubernetes.io/managed-by": "keda-operator",
                **(meta.get("labels") or {}),
            },
            "ownerReferences": [
                {
                    "apiVersion": scaled_object["apiVersion"],
                    "kind": scaled_object["kind"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "scaleTargetRef": {
                "apiVersion": target.get("apiVersion") or "apps/v1",
                "kind": target.get("kind") or "Deployment",
                "name": target["name"],
            },
            "minReplicas": minimum if minimum > 0 else 1,
            "maxReplicas": spec.get("maxReplicaCount") or 100,
            "metrics": metrics,
        },
    }
    if config.get("behavior"):
        hpa["spec"]["behavior"] = config["behavior"]
    return hpa
