"""Local stand-ins for what the project runs against elsewhere, so tests and benchmarks run on
one machine: a Kubernetes control plane with a kubelet stand-in and a metrics API
(``standins.kube``), an API emulator for faults no real server shows on demand
(``standins.emulator``), Cloud Storage (``gcs_emulator``), light Triton models and a repository
of them, a Locust master with workers, an nginx ingress, an OCI registry and a signing keyring.

Tests and benchmarks import it; it imports the product (``demo``, ``samples``, ``common``) and
never ``tests`` or ``bench`` (``lint-imports`` holds it). The local Triton runner that
``make demo`` uses stays in ``demo/local.py``: it is part of the product.
"""
