"""The Triton Deployment (templates/deployment.yaml).

Cases: default arguments (all `--flag=value`, no deprecated `--strict-model-config`); server
options map to flags; probes on the health paths with a startup budget for large models, and
a progress deadline that covers it;
resources with the GPU limit; GKE GPU placement (accelerator, MIG, time-sharing, CPU only);
/dev/shm as a sized memory volume; a Pod Security "restricted" pod; graceful drain; image by
tag or digest; LD_PRELOAD, extra env, labels and annotations; selector labels only name and
instance; the in-pod MPS daemon (off by default; its shell line run for real with a stand-in
control program: Triton gets every argument verbatim, and a daemon that cannot start stops the
container with what to change).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.chart.helpers import (
    CHART_RELEASE,
    Manifest,
    field,
    only,
    render_chart,
    triton_container,
)

TEMPLATE = "templates/deployment.yaml"
REPO = {"modelRepository": "gs://bucket/models"}


def deployment(helm: Path, values: dict[str, Any]) -> Manifest:
    return only(render_chart(helm, {**REPO, **values}, show_only=[TEMPLATE]), "Deployment")


class TestDeployment:
    def test_default_arguments(self, defaults: list[Manifest]) -> None:
        container = triton_container(defaults)
        assert container["command"] == ["tritonserver"]
        assert container["args"] == [
            "--model-repository=gs://bucket/models",
            "--model-control-mode=none",
            "--model-load-thread-count=4",
            "--disable-auto-complete-config",
            "--log-verbose=0",
            "--allow-gpu-metrics=true",
            "--exit-timeout-secs=30",
            "--http-max-input-size=1048576",
            "--http-restricted-api=model-repository,shared-memory,statistics,trace,logging,"
            "model-config:triton-admin-key=$(TRITON_ADMIN_KEY)",
            "--grpc-restricted-protocol=model-repository,shared-memory,statistics,trace,logging,"
            "model-config:triton-admin-key=$(TRITON_ADMIN_KEY)",
        ]

    def test_every_valued_argument_is_written_flag_equals_value(
        self, helm: Path, ci_values_file: Path
    ) -> None:
        args = triton_container(render_chart(helm, {}, values_files=[ci_values_file]))["args"]
        for arg in args:
            assert arg.startswith("--"), arg
            assert "=" in arg or arg == "--disable-auto-complete-config", arg
        assert not any(a.startswith("--strict-model-config") for a in args)

    def test_server_options_become_flags(self, helm: Path) -> None:
        values = {
            "server": {
                "modelControlMode": "explicit",
                "logVerbose": 2,
                "disableAutoCompleteConfig": False,
                "allowGpuMetrics": False,
                "metricsConfig": {"summary_latencies": "true", "counter_latencies": "false"},
                "exitTimeoutSeconds": 5,
                "extraArgs": ["--load-model=bert"],
            }
        }
        args = triton_container([deployment(helm, values)])["args"]
        assert "--model-control-mode=explicit" in args
        assert "--log-verbose=2" in args
        assert "--disable-auto-complete-config" not in args
        assert "--allow-gpu-metrics=false" in args
        assert "--metrics-config=summary_latencies=true" in args
        assert "--metrics-config=counter_latencies=false" in args
        assert "--exit-timeout-secs=5" in args
        assert args[-1] == "--load-model=bert"

    def test_probes_use_the_health_paths(self, defaults: list[Manifest]) -> None:
        container = triton_container(defaults)
        assert field(container, "startupProbe.httpGet.path") == "/v2/health/ready"
        assert field(container, "livenessProbe.httpGet.path") == "/v2/health/live"
        assert field(container, "readinessProbe.httpGet.path") == "/v2/health/ready"
        startup = container["startupProbe"]
        # A BERT-large engine from GCS loads in minutes: the budget is far above that.
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 600

    def test_the_progress_deadline_covers_the_startup_budget(
        self, defaults: list[Manifest]
    ) -> None:
        # Kubernetes' default of 600 s would fail a rollout while a model still loads.
        startup = triton_container(defaults)["startupProbe"]
        budget = startup["periodSeconds"] * startup["failureThreshold"]
        deadline = field(only(defaults, "Deployment"), "spec.progressDeadlineSeconds")
        assert deadline >= budget + 300, "room for a GPU node and the image to arrive"

    def test_consistent_scaled_down_budgets_render(self, helm: Path) -> None:
        scaled = {
            "progressDeadlineSeconds": 30,
            "probes": {"startup": {"periodSeconds": 1, "failureThreshold": 30}},
        }
        rendered = deployment(helm, scaled)
        assert rendered["spec"]["progressDeadlineSeconds"] == 30
        assert triton_container([rendered])["startupProbe"]["failureThreshold"] == 30

    def test_ports(self, defaults: list[Manifest]) -> None:
        ports = {p["name"]: p["containerPort"] for p in triton_container(defaults)["ports"]}
        assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}

    def test_resources_request_cpu_and_memory_and_limit_the_gpu(
        self, defaults: list[Manifest]
    ) -> None:
        resources = triton_container(defaults)["resources"]
        assert set(resources["requests"]) >= {"cpu", "memory"}
        assert resources["limits"]["nvidia.com/gpu"] == 1

    @pytest.mark.parametrize(
        ("gpu", "selector"),
        [
            ({}, {"cloud.google.com/gke-accelerator": "nvidia-l4"}),
            (
                {"accelerator": "nvidia-tesla-a100", "partitionSize": "1g.5gb"},
                {
                    "cloud.google.com/gke-accelerator": "nvidia-tesla-a100",
                    "cloud.google.com/gke-gpu-partition-size": "1g.5gb",
                },
            ),
            (
                {"sharing": {"strategy": "time-sharing", "maxSharedClientsPerGpu": 4}},
                {
                    "cloud.google.com/gke-accelerator": "nvidia-l4",
                    "cloud.google.com/gke-gpu-sharing-strategy": "time-sharing",
                    "cloud.google.com/gke-max-shared-clients-per-gpu": "4",
                },
            ),
            ({"accelerator": ""}, None),
        ],
        ids=["l4", "mig", "time-sharing", "any-gpu"],
    )
    def test_gke_gpu_placement(
        self, helm: Path, gpu: dict[str, Any], selector: dict[str, str] | None
    ) -> None:
        pod = deployment(helm, {"gpu": gpu})["spec"]["template"]["spec"]
        assert pod.get("nodeSelector") == selector
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
            "tolerations"
        ]

    def test_cpu_only_has_no_gpu_selector_toleration_or_limit(self, helm: Path) -> None:
        pod = deployment(helm, {"gpu": {"count": 0}})["spec"]["template"]["spec"]
        assert "nodeSelector" not in pod
        assert "tolerations" not in pod
        assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
        assert "--allow-gpu-metrics=false" in pod["containers"][0]["args"]

    def test_extra_node_selector_and_tolerations_are_merged(self, helm: Path) -> None:
        values = {
            "nodeSelector": {"cloud.google.com/gke-spot": "true"},
            "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
        }
        pod = deployment(helm, values)["spec"]["template"]["spec"]
        assert pod["nodeSelector"]["cloud.google.com/gke-spot"] == "true"
        assert pod["nodeSelector"]["cloud.google.com/gke-accelerator"] == "nvidia-l4"
        assert len(pod["tolerations"]) == 2

    def test_shm_is_a_sized_memory_volume(self, helm: Path) -> None:
        pod = deployment(helm, {"shmSize": "8Gi"})["spec"]["template"]["spec"]
        volume = field(pod, "volumes[name=dshm]")
        assert volume["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
        mount = field(pod, "containers[0].volumeMounts[name=dshm]")
        assert mount["mountPath"] == "/dev/shm"

    def test_pod_meets_pod_security_restricted(self, defaults: list[Manifest]) -> None:
        pod = only(defaults, "Deployment")["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 1000
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        assert all("hostPath" not in v for v in pod["volumes"])
        assert pod["automountServiceAccountToken"] is False

    def test_graceful_shutdown_drains_before_exit(self, defaults: list[Manifest]) -> None:
        pod = only(defaults, "Deployment")["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert field(container, "lifecycle.preStop.exec.command") == ["sleep", "15"]
        assert pod["terminationGracePeriodSeconds"] >= 15 + 30

    def test_rolling_update_keeps_capacity(self, defaults: list[Manifest]) -> None:
        strategy = only(defaults, "Deployment")["spec"]["strategy"]
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0

    @pytest.mark.parametrize(
        ("image", "reference"),
        [
            ({}, f"nvcr.io/nvidia/tritonserver:{CHART_RELEASE}-py3"),
            (
                {"registry": "us-docker.pkg.dev", "release": "25.01"},
                "us-docker.pkg.dev/nvidia/tritonserver:25.01-py3",
            ),
            ({"digest": "sha256:" + "a" * 64}, "nvcr.io/nvidia/tritonserver@sha256:" + "a" * 64),
        ],
        ids=["default", "mirror", "digest"],
    )
    def test_image_reference(self, helm: Path, image: dict[str, str], reference: str) -> None:
        container = triton_container([deployment(helm, {"image": image})])
        assert container["image"] == reference

    def test_environment_labels_annotations_priority(self, helm: Path) -> None:
        values = {
            "ldPreload": "/opt/libcustom.so",
            "extraEnv": {"A_SETTING": "1"},
            "podLabels": {"team": "ml"},
            "podAnnotations": {"example.com/owner": "ml"},
            "priorityClassName": "inference-high",
        }
        template = deployment(helm, values)["spec"]["template"]
        env = {e["name"]: e.get("value") for e in template["spec"]["containers"][0]["env"]}
        assert env == {
            "TRITON_ADMIN_KEY": None,
            "LD_PRELOAD": "/opt/libcustom.so",
            "A_SETTING": "1",
        }
        assert template["metadata"]["labels"]["team"] == "ml"
        assert template["metadata"]["annotations"]["example.com/owner"] == "ml"
        assert template["spec"]["priorityClassName"] == "inference-high"

    def test_selector_labels_are_only_name_and_instance(self, defaults: list[Manifest]) -> None:
        selector = only(defaults, "Deployment")["spec"]["selector"]["matchLabels"]
        assert set(selector) == {"app.kubernetes.io/name", "app.kubernetes.io/instance"}


class TestMpsDaemon:
    """``gpu.mps.enabled``: the container starts the MPS control daemon, then becomes Triton."""

    def test_off_by_default(self, defaults: list[Manifest]) -> None:
        container = triton_container(defaults)
        assert container["command"] == ["tritonserver"]
        assert not [e for e in container.get("env", []) if e["name"].startswith("CUDA_MPS")]

    def test_the_launcher_keeps_tritons_arguments_and_uses_the_tmp_volume(
        self, helm: Path, defaults: list[Manifest]
    ) -> None:
        rendered = deployment(helm, {"gpu": {"mps": {"enabled": True}}})
        container = field(rendered, "spec.template.spec.containers")[0]
        assert container["command"][:2] == ["/bin/sh", "-c"]
        assert container["command"][3] == "tritonserver"  # $0 of the shell line
        assert container["args"] == triton_container(defaults)["args"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["CUDA_MPS_PIPE_DIRECTORY"] == "/tmp/nvidia-mps"
        assert env["CUDA_MPS_LOG_DIRECTORY"] == "/tmp/nvidia-mps-log"
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]

    @staticmethod
    def _run_launcher(
        helm: Path, tmp_path: Path, *, control_exit: int
    ) -> tuple[subprocess.CompletedProcess[str], list[str]]:
        """Run the rendered shell line with a stand-in for the driver's control program (which
        needs a GPU) and a `tritonserver` on PATH that records its arguments."""
        control = tmp_path / "nvidia-cuda-mps-control"
        control.write_text(
            '#!/bin/sh\ntest -d "$CUDA_MPS_PIPE_DIRECTORY" || exit 3\n'
            f'echo "$@" > {tmp_path}/control-args\nexit {control_exit}\n'
        )
        server = tmp_path / "bin" / "tritonserver"
        server.parent.mkdir()
        server.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/server-args\n')
        for program in (control, server):
            program.chmod(0o755)
        mps = {"enabled": True, "controlPath": str(control)}
        rendered = deployment(helm, {"gpu": {"mps": mps}})
        container = field(rendered, "spec.template.spec.containers")[0]
        env = {
            **os.environ,
            "PATH": f"{server.parent}{os.pathsep}{os.environ['PATH']}",
            "CUDA_MPS_PIPE_DIRECTORY": str(tmp_path / "pipe"),
            "CUDA_MPS_LOG_DIRECTORY": str(tmp_path / "log"),
        }
        result = subprocess.run(
            [*container["command"], *container["args"]],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return result, container["args"]

    def test_the_daemon_starts_then_triton_gets_every_argument_verbatim(
        self, helm: Path, tmp_path: Path
    ) -> None:
        result, args = self._run_launcher(helm, tmp_path, control_exit=0)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "control-args").read_text().split() == ["-d"]
        assert (tmp_path / "log").is_dir()
        assert (tmp_path / "server-args").read_text().splitlines() == args

    def test_a_daemon_that_cannot_start_stops_the_container_with_what_to_change(
        self, helm: Path, tmp_path: Path
    ) -> None:
        result, _ = self._run_launcher(helm, tmp_path, control_exit=1)
        assert result.returncode == 1
        assert "could not start the MPS control daemon" in result.stderr
        assert "set gpu.mps.controlPath" in result.stderr
        assert not (tmp_path / "server-args").exists()  # Triton never started
