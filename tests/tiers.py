"""The test tiers, declared once: what each test needs decides its tier.

- ``render``: helm and pure Python; no server, no socket listening. The fast lane
  (``make test-fast``), run on every edit.
- ``process``: local servers on loopback: a Triton, Locust, a proxy, an emulator, Prometheus.
- ``cluster``: the real Kubernetes control plane (``../shared/k8s``).
- ``artifact``: built images and registries.
- ``gpu``: needs an NVIDIA GPU (the device machine); never run by ``make test`` or CI.

A test's tier is the highest of the tiers of the fixtures it uses (``TIER_BY_FIXTURE``) and of its
module (``TIER_BY_MODULE``, for modules that start their servers themselves); everything else is
``render``. A render-tier test that listens on a socket or starts a server fails with the reason,
so the table cannot drift from what the tests do. Tests that measure rates carry the ``rates``
mark too (``RATE_MEASURING``): the runner gives them the machine to themselves.
"""

from __future__ import annotations

from collections.abc import Sequence, Set

TIERS = ("render", "process", "cluster", "artifact", "gpu")
"""From the fewest needs to the most: a test that needs two takes the later one."""

TIER_BY_FIXTURE = {
    # tests/conftest.py
    "control_plane": "cluster",
    # tests/locust/conftest.py and tests/samples/conftest.py: a local Triton, the GCS emulator
    "triton": "process",
    "local_triton": "process",
    "gcs_emulator": "process",
    # tests/deployer/conftest.py: the API emulator for injected faults
    "emulator": "process",
    # tests/locust/conftest.py: nginx as the ingress in front of the local Triton
    "ingress": "process",
    # tests/chart/conftest.py: a gpg-agent holding the release key
    "signing_keyring": "process",
    # images and registries: tests/deployer/conftest.py, tests/chart/conftest.py
    "image_store": "artifact",
    "image_registry": "artifact",
    "oci_registry": "artifact",
    # the real node (kubelet, containerd) on a control plane of its own, pulling built images
    "real_node": "artifact",
    # tests/samples/conftest.py: a CUDA device (skipped, saying why, where there is none)
    "cuda_device": "gpu",
}
"""Fixtures that start something, and the tier that needs."""

TIER_BY_MODULE = {
    "tests/bench/test_gpu_benchmark.py": "process",
    "tests/bench/test_model_loading.py": "process",
    "tests/chart/test_generate_triton.py": "process",
    "tests/chart/test_metrics_prometheus.py": "process",
    "tests/chart/test_package.py": "process",
    "tests/chart/test_restricted_api_triton.py": "process",
    "tests/common/test_processes.py": "process",
    "tests/demo/test_demo.py": "process",
    "tests/demo/test_local.py": "process",
    "tests/demo/test_soak.py": "process",
    "tests/deployer/test_deadlines.py": "process",
    "tests/deployer/test_request_limit.py": "process",
    "tests/locust/test_distributed.py": "process",
    "tests/locust/test_http_wire.py": "process",
    "tests/locust/test_locustfile.py": "process",
    "tests/samples/test_hostile_requests.py": "process",
    "tests/samples/test_upload.py": "process",
    "tests/samples/test_warmup.py": "process",
    "tests/standins/test_apiserver.py": "cluster",
}
"""Modules whose tests start their own servers, or ask for a fixture by name at run time
(``request.getfixturevalue``), so that the fixtures they declare do not say so."""

RATE_MEASURING = (
    "tests/bench/test_gpu_benchmark.py::test_a_short_cpu_run_serves_every_request",
    "tests/demo/test_demo.py::test_short_demo_run",
    "tests/demo/test_soak.py::test_short_soak_run",
    "tests/locust/test_distributed.py",  # the master's sums of its workers' last reports
    "tests/locust/test_locustfile.py::test_constant_rate_is_reached_without_failures",
    "tests/locust/test_locustfile.py::test_steps_climb_then_stop_at_run_time",
    "tests/locust/test_locustfile.py::test_the_run_time_counts_from_readiness",
)
"""The tests that assert on a rate, a duration or a count of requests in flight under load (test
ids, or their prefixes): they run alone, so another tier's load never makes them fail."""

RATE_MEASURING_MODULES = tuple(sorted({test_id.split("::")[0] for test_id in RATE_MEASURING}))
"""The modules that hold them: the rates lane collects only these. It runs alone at the end, so
collecting every module (seconds of imports) would add straight to ``make test``'s time."""

RENDER_TOOLS = frozenset(
    {"helm", "kubectl", "checkov", "lint-imports", "hadolint", "git", "xz", "sh", "bash", "make"}
    | {"python", "python3", "python3.11", "lscpu"}
)
"""Programs a render-tier test may run: renders, linters, the chart's rendered shell lines,
``make --dry-run``, Python workers of its own (and ``lscpu``, which torch and onnxruntime run
to read the CPU)."""


def tier_of(module_path: str, fixture_names: frozenset[str]) -> str:
    """The tier of a test in ``module_path`` (relative to the repository, with ``/``) that uses
    ``fixture_names`` (the whole closure, as pytest lists it)."""
    needs = {TIER_BY_FIXTURE[name] for name in fixture_names if name in TIER_BY_FIXTURE}
    if module_path in TIER_BY_MODULE:
        needs.add(TIER_BY_MODULE[module_path])
    return max(needs, key=TIERS.index, default="render")


def measures_rates(test_id: str) -> bool:
    """Whether the test ``test_id`` (``path::name[params]``) asserts on rates, so it must not
    share the machine."""
    return test_id.startswith(RATE_MEASURING)


LANES = {
    "render": "render and not rates",
    "cluster": "cluster and not rates",
    "artifact": "artifact and not rates",
    "process": "process and not rates",
    "rates": "rates",
    "gpu": "gpu",
}
"""What ``python -m tests`` runs, each lane a pytest process with this mark expression."""

STARTS_AFTER = {
    "render": (),
    "cluster": (),
    "artifact": (),
    "process": ("cluster",),
    "rates": ("render", "cluster", "artifact", "process"),
    "gpu": ("render", "cluster", "artifact", "process", "rates"),
}
"""When each lane starts: once every lane it names has ended (a lane a run does not choose counts
as ended). The cluster and artifact tests mostly wait on API servers, builds and pods, so they
start at once, beside the renders; the local servers of the process tier start once the cluster
tests are done, beside the artifact tests' builds and pods. The renders only compute, so they run
at a lower priority (``NICENESS``) and take the time the others leave. The rate-measuring tests
run last, alone, never beside a control plane. ``gpu`` runs only when named."""

NICENESS = {"render": 10}
"""Lanes run at a lower CPU priority: a core the waiting lanes leave idle is the renders', and a
server's answer or a controller's sync is never queued behind a helm render."""


def startable(waiting: Sequence[str], ended: Set[str], chosen: Set[str]) -> list[str]:
    """The lanes of ``waiting`` that may start now: every lane they wait for (STARTS_AFTER) has
    ``ended`` or is not among the ``chosen``."""
    return [
        name
        for name in waiting
        if all(before in ended or before not in chosen for before in STARTS_AFTER[name])
    ]


XDIST_WORKERS = {"render": 2, "cluster": 3, "process": 4}
"""Lanes split over pytest-xdist workers, each test sent to the next free worker (but see
ONE_WORKER_MODULES). Renders share nothing but read-only files. The cluster tests mostly wait
(helm's --wait, the controllers' sync periods), so three workers, each with a control plane of
its own (its session fixtures are per worker), finish in about a third of the time one takes,
for about a gigabyte of memory each. The process tests mostly wait too, on their servers' starts
and load runs of fixed length: four workers, each with a Triton of its own; the lane ends after
the others, when a fourth one has a core to use."""


ONE_WORKER_MODULES = frozenset(
    {
        "tests/chart/test_autoscaling_cluster.py",  # every scenario, side by side (2 minutes)
        "tests/chart/test_generate_triton.py",  # a Triton
        "tests/chart/test_metrics_prometheus.py",  # a Triton, Prometheus and a load run
        "tests/chart/test_package.py",  # `make package`, signed
        "tests/chart/test_restricted_api_triton.py",  # a Triton
        "tests/samples/test_hostile_requests.py",  # a batching Triton
    }
)
"""Modules whose tests share a module fixture that starts servers or runs a scenario: a worker
runs a module fixture for the module's tests it gets, so these go to one worker whole (sent
before the single tests, the biggest first), where it runs once (tests/xdist_modules.py)."""

ONE_WORKER_MODULE_LANES = frozenset({"cluster", "process"})
"""The lanes that send ONE_WORKER_MODULES whole. Not the renders: sent one by one, their 2,000
small tests take 58 s for `make test-fast` (106 s of CPU), against 51 s (94 s) in the batches
pytest-xdist sends by default."""


def xdist_scope(test_id: str) -> str:
    """What pytest-xdist sends to one worker together: the module for ONE_WORKER_MODULES, the
    test itself otherwise."""
    module = test_id.split("::", 1)[0]
    return module if module in ONE_WORKER_MODULES else test_id


def stale_tier_entries(test_ids: set[str]) -> list[str]:
    """The entries of ``TIER_BY_MODULE``, ``ONE_WORKER_MODULES`` and ``RATE_MEASURING`` that
    name none of ``test_ids`` (every test of a run that collected the whole tree)."""
    modules = {test_id.split("::", 1)[0] for test_id in test_ids}
    stale = [
        module for module in (*TIER_BY_MODULE, *sorted(ONE_WORKER_MODULES)) if module not in modules
    ]
    stale += [entry for entry in RATE_MEASURING if not any(t.startswith(entry) for t in test_ids)]
    return stale
