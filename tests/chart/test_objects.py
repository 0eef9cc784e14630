"""The smaller templates: Service, ServiceAccount, PodDisruptionBudget, Application, test pod.

Cases: Service ports with appProtocol (gRPC as h2c); LoadBalancer and NodePort Services
carry only HTTP and gRPC (with source ranges), metrics stay on a ClusterIP Service; NEG
annotation; ServiceAccount
created with the Workload Identity annotation, or an existing one named; PodDisruptionBudget
only when more than one pod can run; Application componentKinds exactly the rendered kinds in
every ci file, the Application named after the release; the `helm test` pod curls
/v2/health/ready of this release's Service.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chart.helpers import Manifest, field, is_hook, only, render_chart

DEPLOYMENT = "templates/deployment.yaml"
REPO = {"modelRepository": "gs://bucket/models"}


class TestService:
    TEMPLATE = "templates/service.yaml"

    def test_ports_and_protocols(self, defaults: list[Manifest]) -> None:
        service = only(defaults, "Service")
        assert service["spec"]["type"] == "ClusterIP"
        ports = {p["name"]: (p["port"], p.get("appProtocol")) for p in service["spec"]["ports"]}
        assert ports == {
            "http": (8000, "http"),
            "grpc": (8001, "kubernetes.io/h2c"),
            "metrics": (8002, "http"),
        }

    @pytest.mark.parametrize("service_type", ["LoadBalancer", "NodePort"])
    def test_exposed_type_keeps_metrics_inside(self, helm: Path, service_type: str) -> None:
        values = {**REPO, "service": {"type": service_type, "sourceRanges": ["10.0.0.0/8"]}}
        manifests = render_chart(helm, values, show_only=[self.TEMPLATE])
        exposed = only(manifests, "Service", "-server")
        assert exposed["spec"]["type"] == service_type
        assert [p["name"] for p in exposed["spec"]["ports"]] == ["http", "grpc"]
        if service_type == "LoadBalancer":
            assert exposed["spec"]["loadBalancerSourceRanges"] == ["10.0.0.0/8"]
        metrics = only(manifests, "Service", "-metrics")
        assert metrics["spec"]["type"] == "ClusterIP"
        assert [p["port"] for p in metrics["spec"]["ports"]] == [8002]
        assert metrics["spec"]["selector"] == exposed["spec"]["selector"]

    def test_neg_annotation(self, helm: Path) -> None:
        service = only(
            render_chart(helm, {**REPO, "service": {"neg": True}}, show_only=[self.TEMPLATE]),
            "Service",
        )
        assert service["spec"]["type"] == "ClusterIP"
        assert "cloud.google.com/neg" in service["metadata"]["annotations"]


class TestServiceAccount:
    TEMPLATE = "templates/serviceaccount.yaml"

    def test_created_with_workload_identity(self, helm: Path) -> None:
        gsa = "triton@project.iam.gserviceaccount.com"
        values = {**REPO, "serviceAccount": {"gcpServiceAccount": gsa}}
        manifests = render_chart(helm, values, show_only=[self.TEMPLATE, DEPLOYMENT])
        account = only(manifests, "ServiceAccount")
        assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] == gsa
        pod = only(manifests, "Deployment")["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == account["metadata"]["name"]

    def test_existing_account_is_used_and_not_created(self, helm: Path) -> None:
        values = {**REPO, "serviceAccount": {"create": False, "name": "shared-reader"}}
        manifests = render_chart(helm, values, show_only=[self.TEMPLATE, DEPLOYMENT])
        assert not [m for m in manifests if m["kind"] == "ServiceAccount"]
        pod = only(manifests, "Deployment")["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "shared-reader"


class TestPodDisruptionBudget:
    TEMPLATE = "templates/poddisruptionbudget.yaml"

    def test_absent_with_one_replica(self, defaults: list[Manifest]) -> None:
        assert not [m for m in defaults if m["kind"] == "PodDisruptionBudget"]

    def test_present_with_several_replicas(self, helm: Path) -> None:
        manifests = render_chart(
            helm, {**REPO, "replicaCount": 3}, show_only=[self.TEMPLATE, DEPLOYMENT]
        )
        pdb = only(manifests, "PodDisruptionBudget")
        assert pdb["spec"]["maxUnavailable"] == 1
        deployment = only(manifests, "Deployment")
        assert pdb["spec"]["selector"] == deployment["spec"]["selector"]

    def test_can_be_switched_off(self, helm: Path) -> None:
        values = {**REPO, "replicaCount": 3, "podDisruptionBudget": {"enabled": False}}
        assert not render_chart(helm, values, show_only=[self.TEMPLATE])


class TestApplication:
    TEMPLATE = "templates/application.yaml"

    def test_component_kinds_are_exactly_the_rendered_kinds(
        self, helm: Path, ci_values_file: Path
    ) -> None:
        manifests = render_chart(
            helm, {"marketplace": {"enabled": True}}, values_files=[ci_values_file]
        )
        application = only(manifests, "Application")
        listed = {(c["group"], c["kind"]) for c in application["spec"]["componentKinds"]}
        rendered = {
            (m["apiVersion"], m["kind"])
            for m in manifests
            if m["kind"] != "Application" and not is_hook(m)
        }
        assert listed == rendered

    def test_selects_the_release(self, helm: Path) -> None:
        values = {**REPO, "marketplace": {"enabled": True, "icon": "https://x/icon.png"}}
        application = only(
            render_chart(helm, values, release="demo", show_only=[self.TEMPLATE]), "Application"
        )
        # Named after the release: Marketplace's placeholder Application carries that name.
        assert application["metadata"]["name"] == "demo"
        assert application["spec"]["selector"]["matchLabels"] == {
            "app.kubernetes.io/instance": "demo"
        }
        assert field(application, "spec.descriptor.icons[0].src") == "https://x/icon.png"

    def test_absent_by_default(self, defaults: list[Manifest]) -> None:
        assert not [m for m in defaults if m["kind"] == "Application"]


class TestHelmTestPod:
    TEMPLATE = "templates/tests/test-ready.yaml"

    def test_checks_readiness_of_this_release(self, helm: Path, defaults: list[Manifest]) -> None:
        pod = only(render_chart(helm, show_only=[self.TEMPLATE]), "Pod")
        assert is_hook(pod)
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        service = only(defaults, "Service")["metadata"]["name"]
        url = pod["spec"]["containers"][0]["args"][-1]
        assert url == f"http://{service}:8000/v2/health/ready"
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
