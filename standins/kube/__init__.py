"""A real Kubernetes 1.36 control plane on loopback (``control_plane``), the kubelet stand-in
that registers nodes and plays the pods' lives (``kubelet``, ``nodes``), KEDA's HorizontalPod
Autoscaler construction (``keda``), the custom and external metrics API (``metrics``), and the
custom resource definitions of GKE's objects the chart renders (``crds/``).
``python -m standins.kube COMMAND`` runs a command against them."""
