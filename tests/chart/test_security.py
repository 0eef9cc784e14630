"""Security: restricted Triton APIs, the key's Secret, NetworkPolicy, edge authentication,
Pod Security "restricted" (templates/secret.yaml, networkpolicy.yaml, istio-auth.yaml,
gke-policies.yaml).

Cases: the key is drawn into a Secret and reaches Triton only through `$(TRITON_ADMIN_KEY)`; it
never appears in clear (or base64) in arguments, ConfigMaps, annotations or any other object;
its Secret is marked create-only (Flux's `ssa: IfNotPresent`, which the deployer honours); an
existing Secret is used as named; the restriction can be turned off; NetworkPolicy selects
only this release's Triton pods and admits 8000/8001 per ingress mode (gateway namespace, Google
load-balancer ranges, listed namespaces, a LoadBalancer's source ranges, the `helm test` pod)
and 8002 from the scraper only; placeholders and the test pod admit nothing; Istio JWT
authentication and GKE IAP and health-check policies target this release; every pod of every
ci file meets Pod Security "restricted".
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.chart.helpers import (
    Manifest,
    field,
    is_hook,
    network_policies_admit,
    only,
    render_chart,
    triton_container,
)
from tests.chart.test_quality import notes

DEPLOYMENT = "templates/deployment.yaml"
REPO = {"modelRepository": "gs://bucket/models"}
SERVICE = "triton-triton-inference-server"
GATEWAY_API_INGRESS = {
    "mode": "gatewayApi",
    "host": "t.example.com",
    "grpc": {"host": "g.example.com"},
}


def admin_key(manifests: list[Manifest]) -> str:
    secret = only(manifests, "Secret", "-admin-key")
    (encoded,) = secret["data"].values()
    return base64.b64decode(encoded).decode()


class TestRestrictedApi:
    TEMPLATE = "templates/secret.yaml"

    def test_key_reaches_triton_only_through_the_environment(
        self, defaults: list[Manifest]
    ) -> None:
        key = admin_key(defaults)
        assert len(key) == 48 and key.isalnum()
        container = triton_container(defaults)
        env = field(container, "env[name=TRITON_ADMIN_KEY].valueFrom.secretKeyRef")
        assert env == {"name": f"{SERVICE}-admin-key", "key": "admin-key"}
        restricted = [a for a in container["args"] if "restricted" in a]
        assert [a.split("=", 1)[0] for a in restricted] == [
            "--http-restricted-api",
            "--grpc-restricted-protocol",
        ]
        for arg in restricted:
            apis, header = arg.split("=", 1)[1].split(":")
            assert set(apis.split(",")) == {
                "model-repository",
                "shared-memory",
                "statistics",
                "trace",
                "logging",
                "model-config",
            }
            assert header == "triton-admin-key=$(TRITON_ADMIN_KEY)"

    def test_key_is_never_in_clear(self, helm: Path, ci_values_file: Path) -> None:
        manifests = render_chart(helm, {}, values_files=[ci_values_file], show_only=[self.TEMPLATE])
        secrets = [m for m in manifests if m["kind"] == "Secret"]
        if not secrets:
            pytest.skip(
                f"{ci_values_file.name} creates no key (existing Secret or restriction off)"
            )
        key = admin_key(manifests)
        forms = {key, base64.b64encode(key.encode()).decode()}
        for manifest in manifests:
            if manifest["kind"] == "Secret":
                continue
            text = json.dumps(manifest)
            assert not any(form in text for form in forms), manifest["kind"]

    def test_key_secret_is_created_only_once(self, helm: Path) -> None:
        """Tools that apply rendered manifests (the deployer, Flux) must not overwrite the
        key a running Triton holds: the Secret is marked create-only."""
        secret = only(render_chart(helm, REPO, show_only=[self.TEMPLATE]), "Secret", "-admin-key")
        annotations = secret["metadata"]["annotations"]
        assert annotations == {"kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent"}

    def test_existing_secret(self, helm: Path) -> None:
        restricted = {"existingSecret": "triton-admin", "secretKey": "token", "header": "x-admin"}
        manifests = render_chart(helm, {**REPO, "security": {"restrictedApi": restricted}})
        assert not [m for m in manifests if m["kind"] == "Secret"]
        container = triton_container(manifests)
        assert field(container, "env[name=TRITON_ADMIN_KEY].valueFrom.secretKeyRef") == {
            "name": "triton-admin",
            "key": "token",
        }
        assert container["args"][-1].endswith(":x-admin=$(TRITON_ADMIN_KEY)")

    def test_can_be_turned_off(self, helm: Path) -> None:
        manifests = render_chart(helm, {**REPO, "security": {"restrictedApi": {"enabled": False}}})
        assert not [m for m in manifests if m["kind"] == "Secret"]
        container = triton_container(manifests)
        assert not [a for a in container["args"] if "restricted" in a]
        assert "env" not in container


class TestNetworkPolicy:
    TEMPLATE = "templates/networkpolicy.yaml"

    @staticmethod
    def policy(helm: Path, values: dict[str, Any]) -> tuple[Manifest, list[Manifest]]:
        manifests = render_chart(helm, values)
        return only(manifests, "NetworkPolicy", SERVICE), manifests

    @staticmethod
    def sources(policy: Manifest, port: str) -> set[str]:
        """Namespaces and address ranges admitted on ``port`` (pod selectors left out)."""
        found = set()
        for rule in policy["spec"]["ingress"]:
            if port in {p["port"] for p in rule["ports"]}:
                for peer in rule["from"]:
                    if "namespaceSelector" in peer:
                        labels = peer["namespaceSelector"]["matchLabels"]
                        found.add(labels["kubernetes.io/metadata.name"])
                    elif "ipBlock" in peer:
                        found.add(peer["ipBlock"]["cidr"])
        return found

    def test_helm_test_pod_may_check_readiness(self, helm: Path) -> None:
        values = {**REPO, "networkPolicy": {"allowSameNamespace": False}}
        policy, manifests = self.policy(helm, values)
        test_pod = only([m for m in manifests if is_hook(m)], "Pod")["metadata"]["labels"]
        peers = [
            p["podSelector"]["matchLabels"]
            for r in policy["spec"]["ingress"]
            for p in r["from"]
            if "podSelector" in p
        ]
        assert peers and all(p.items() <= test_pod.items() for p in peers)

    def test_exposed_service_admits_its_source_ranges(self, helm: Path) -> None:
        values = {**REPO, "service": {"type": "LoadBalancer", "sourceRanges": ["203.0.113.0/24"]}}
        policy, _ = self.policy(helm, values)
        assert self.sources(policy, "http") == {"serving", "203.0.113.0/24"}
        assert self.sources(policy, "metrics") == {"gmp-system"}

    def test_selects_only_this_release_triton_pods(self, helm: Path) -> None:
        policy, manifests = self.policy(helm, REPO)
        deployment = only(manifests, "Deployment")
        assert policy["spec"]["podSelector"] == deployment["spec"]["selector"]
        assert policy["spec"]["policyTypes"] == ["Ingress"]

    def test_mode_none_admits_own_namespace_and_scraper(self, helm: Path) -> None:
        policy, _ = self.policy(helm, REPO)
        assert self.sources(policy, "http") == self.sources(policy, "grpc") == {"serving"}
        assert self.sources(policy, "metrics") == {"gmp-system"}

    @staticmethod
    def admits(manifests: list[Manifest], port: str, source: dict[str, Any]) -> bool:
        """Whether the release's policies let ``source`` reach its Triton pods on ``port``."""
        labels = only(manifests, "Deployment", "-server")["spec"]["template"]["metadata"]
        return network_policies_admit(
            [m for m in manifests if m["kind"] == "NetworkPolicy"],
            pod_labels=labels["labels"],
            port=port,
            source=source,
        )

    def test_istio_admits_the_gateway_pods_only(self, helm: Path) -> None:
        values = {
            **REPO,
            "ingress": {"mode": "istio", "host": "t.example.com"},
            "networkPolicy": {"allowSameNamespace": False, "allowedNamespaces": ["jobs"]},
        }
        policy, manifests = self.policy(helm, values)
        assert self.sources(policy, "http") == {"istio-system", "jobs"}
        gateway = {"namespace": "istio-system", "labels": {"istio": "ingressgateway"}}
        istiod = {"namespace": "istio-system", "labels": {"app": "istiod"}}
        for port in ("http", "grpc"):
            assert self.admits(manifests, port, gateway)
            assert not self.admits(manifests, port, istiod)
        assert not self.admits(manifests, "metrics", gateway)

    # Google's minimum firewall rules per load balancer
    # (https://cloud.google.com/load-balancing/docs/firewall-rules): health checks come from
    # 35.191.0.0/16 and 130.211.0.0/22; a global external Application Load Balancer's proxies
    # (Google Front Ends) from the same ranges; regional and internal ones' from the region's
    # proxy-only subnet.
    HEALTH_CHECK, FRONT_END = {"ip": "35.191.10.20"}, {"ip": "130.211.1.2"}
    PROXY_ONLY, ELSEWHERE = {"ip": "10.129.0.7"}, {"ip": "203.0.113.9"}

    def test_gateway_api_global_class_admits_front_ends(self, helm: Path) -> None:
        ingress = {
            **GATEWAY_API_INGRESS,
            "gatewayApi": {"className": "gke-l7-global-external-managed"},
        }
        manifests = render_chart(helm, {**REPO, "ingress": ingress})
        for port in ("http", "grpc"):
            assert self.admits(manifests, port, self.FRONT_END)
            assert self.admits(manifests, port, self.HEALTH_CHECK)
            assert not self.admits(manifests, port, self.PROXY_ONLY)
            assert not self.admits(manifests, port, self.ELSEWHERE)

    @pytest.mark.parametrize("class_name", ["gke-l7-regional-external-managed", "gke-l7-rilb"])
    def test_gateway_api_regional_class_admits_its_proxy_only_subnet(
        self, helm: Path, class_name: str
    ) -> None:
        ingress = {**GATEWAY_API_INGRESS, "gatewayApi": {"className": class_name}}
        values = {**REPO, "ingress": ingress, "networkPolicy": {"proxyOnlySubnet": "10.129.0.0/23"}}
        manifests = render_chart(helm, values)
        for port in ("http", "grpc"):
            assert self.admits(manifests, port, self.PROXY_ONLY)
            assert not self.admits(manifests, port, self.ELSEWHERE)
        # Health checks probe the HealthCheckPolicy's port (8000) only.
        check = only(manifests, "HealthCheckPolicy")
        assert field(check, "spec.default.config.httpHealthCheck.port") == 8000
        assert self.admits(manifests, "http", self.HEALTH_CHECK)
        assert not self.admits(manifests, "grpc", self.HEALTH_CHECK)

    def test_gateway_api_without_health_check_policy_admits_probes_on_both_ports(
        self, helm: Path
    ) -> None:
        """GKE's default health check probes each backend's serving port."""
        ingress = {**GATEWAY_API_INGRESS, "gatewayApi": {"gkeHealthCheck": False}}
        values = {**REPO, "ingress": ingress, "networkPolicy": {"proxyOnlySubnet": "10.129.0.0/23"}}
        manifests = render_chart(helm, values)
        assert not [m for m in manifests if m["kind"] == "HealthCheckPolicy"]
        assert self.admits(manifests, "grpc", self.HEALTH_CHECK)

    @pytest.mark.parametrize(
        ("mode", "source", "other"),
        [
            (
                "istio",
                {"namespace": "istio-system", "labels": {"istio": "ingressgateway"}},
                {"ip": "35.191.10.20"},
            ),
            ("gatewayApi", {"ip": "35.191.10.20"}, {"namespace": "istio-system", "labels": {}}),
        ],
    )
    def test_canary_release_admits_the_first_release_ingress(
        self, helm: Path, mode: str, source: dict[str, Any], other: dict[str, Any]
    ) -> None:
        """The canary has no ingress of its own; the first release's routes reach it."""
        values = {**REPO, "networkPolicy": {"ingressMode": mode}}
        manifests = render_chart(helm, values, release="triton-next")
        assert not [m for m in manifests if m["kind"] in {"Gateway", "VirtualService"}]
        assert self.admits(manifests, "http", source)
        assert not self.admits(manifests, "http", other)
        assert not self.admits(render_chart(helm, REPO, release="triton-next"), "http", source)

    def test_exposed_service_keeps_client_addresses(self, helm: Path) -> None:
        values = {**REPO, "service": {"type": "LoadBalancer", "sourceRanges": ["203.0.113.0/24"]}}
        manifests = render_chart(helm, values)
        service = only(manifests, "Service", SERVICE)
        assert service["spec"]["externalTrafficPolicy"] == "Local"
        assert self.admits(manifests, "grpc", self.ELSEWHERE)
        assert not self.admits(manifests, "grpc", self.HEALTH_CHECK)

    def test_every_rule_names_its_sources(self, helm: Path, ci_values_file: Path) -> None:
        """A rule without `from` admits every source: never rendered, even with empty ranges."""
        emptied: dict[str, Any] = {"networkPolicy": {"gatewayApiSourceRanges": []}}
        for values in ({}, emptied):
            manifests = render_chart(helm, values, values_files=[ci_values_file])
            for policy in [m for m in manifests if m["kind"] == "NetworkPolicy"]:
                for rule in policy["spec"].get("ingress", []):
                    assert rule.get("from"), policy["metadata"]["name"]

    def test_notes_say_how_to_check_enforcement(self, tmp_path: Path) -> None:
        text = notes(tmp_path)
        assert "kubectl -n kube-system get daemonset anetd calico-node --ignore-not-found" in text
        assert "silently inert" in text
        assert "anetd" not in notes(tmp_path, "networkPolicy.enabled=false")

    def test_placeholders_and_test_pod_admit_nothing(self, helm: Path) -> None:
        values = {**REPO, "standby": {"enabled": True}}
        others = ["templates/standby.yaml", "templates/tests/test-ready.yaml", DEPLOYMENT]
        manifests = render_chart(helm, values, show_only=[self.TEMPLATE, *others])
        policy = only(manifests, "NetworkPolicy", "-no-ingress")
        assert "ingress" not in policy["spec"]
        names = {
            e["key"]: set(e["values"]) for e in policy["spec"]["podSelector"]["matchExpressions"]
        }
        placeholder = only(manifests, "Deployment", "-standby")["spec"]["template"]["metadata"]
        test_pod = only([m for m in manifests if is_hook(m)], "Pod")["metadata"]
        for labels in (placeholder["labels"], test_pod["labels"]):
            assert labels["app.kubernetes.io/name"] in names["app.kubernetes.io/name"]
        triton = only(manifests, "Deployment", "-server")["spec"]["selector"]["matchLabels"]
        assert triton["app.kubernetes.io/name"] not in names["app.kubernetes.io/name"]


class TestEdgeAuthentication:
    TEMPLATE = "templates/istio-auth.yaml"

    def test_istio_jwt(self, helm: Path) -> None:
        jwt = {"enabled": True, "issuer": "https://issuer.example.com", "audiences": ["triton"]}
        manifests = render_chart(
            helm,
            {
                **REPO,
                "ingress": {"mode": "istio", "host": "t.example.com"},
                "security": {"jwt": jwt},
            },
            show_only=[self.TEMPLATE, DEPLOYMENT],
        )
        selector = only(manifests, "Deployment")["spec"]["selector"]
        authn = only(manifests, "RequestAuthentication")
        assert authn["spec"]["selector"] == selector
        assert authn["spec"]["jwtRules"][0]["issuer"] == "https://issuer.example.com"
        assert authn["spec"]["jwtRules"][0]["audiences"] == ["triton"]
        authz = only(manifests, "AuthorizationPolicy")
        assert authz["spec"]["action"] == "ALLOW"
        principals = field(authz, "spec.rules[0].from[0].source.requestPrincipals")
        assert principals == ["https://issuer.example.com/*"]
        open_paths = field(authz, "spec.rules[1].to[0].operation.paths")
        assert open_paths == ["/v2/health/live", "/v2/health/ready"]

    def test_gke_iap_and_health_check(self, helm: Path) -> None:
        iap = {
            "enabled": True,
            "clientId": "id.apps.googleusercontent.com",
            "clientSecretName": "oauth",
        }
        ingress = {
            "mode": "gatewayApi",
            "grpc": {"enabled": False},
            "gatewayApi": {"className": "gke-l7-global-external-managed"},
        }
        values = {**REPO, "ingress": ingress, "security": {"iap": iap}}
        # On GKE's Gateway the load balancer checks identity: its policies, not Istio's.
        manifests = render_chart(helm, values, show_only=["templates/gke-policies.yaml"])
        policy = only(manifests, "GCPBackendPolicy")
        assert policy["spec"]["targetRef"] == {"group": "", "kind": "Service", "name": SERVICE}
        assert policy["spec"]["default"]["iap"]["oauth2ClientSecret"] == {"name": "oauth"}
        check = only(manifests, "HealthCheckPolicy")
        assert field(check, "spec.default.config.httpHealthCheck") == {
            "portSpecification": "USE_FIXED_PORT",
            "port": 8000,
            "requestPath": "/v2/health/ready",
        }

    def test_canary_backend_is_probed_and_guarded_too(self, helm: Path) -> None:
        """The canary's Service is a backend of its own on GKE's load balancer: without its
        own HealthCheckPolicy it is probed at `/` (unhealthy), without its own GCPBackendPolicy
        its share of requests skips IAP."""
        iap = {"enabled": True, "clientId": "id", "clientSecretName": "oauth"}
        canary = {"enabled": True, "serviceName": "triton-next-triton-inference-server"}
        ingress = {**GATEWAY_API_INGRESS, "canary": canary}
        values = {
            **REPO,
            "ingress": ingress,
            "security": {"iap": iap},
            "networkPolicy": {"proxyOnlySubnet": "10.129.0.0/23"},
        }
        manifests = render_chart(helm, values)
        backends = {
            ref["name"]
            for route in manifests
            if route["kind"] in {"HTTPRoute", "GRPCRoute"}
            and not route["metadata"]["name"].endswith("-redirect")
            for ref in route["spec"]["rules"][0]["backendRefs"]
        }
        assert backends == {SERVICE, canary["serviceName"]}
        for kind in ("HealthCheckPolicy", "GCPBackendPolicy"):
            targets = {m["spec"]["targetRef"]["name"] for m in manifests if m["kind"] == kind}
            assert targets == backends, kind


RESTRICTED_CAPABILITIES = {"NET_BIND_SERVICE"}


def pod_specs(manifests: list[Manifest]) -> list[tuple[str, Manifest]]:
    specs = [(m["metadata"]["name"], m["spec"]) for m in manifests if m["kind"] == "Pod"]
    specs += [
        (m["metadata"]["name"], m["spec"]["template"]["spec"])
        for m in manifests
        if m["kind"] == "Deployment"
    ]
    return specs


def test_every_pod_meets_pod_security_restricted(helm: Path, ci_values_file: Path) -> None:
    """The checks of the Pod Security Standards' "restricted" profile (baseline included)."""
    for name, pod in pod_specs(render_chart(helm, {}, values_files=[ci_values_file])):
        pod_context = pod.get("securityContext", {})
        assert not (pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC")), name
        assert all(set(v) & {"hostPath"} == set() for v in pod.get("volumes", [])), name
        allowed_volumes = {
            "name",
            "emptyDir",
            "configMap",
            "secret",
            "projected",
            "persistentVolumeClaim",
            "downwardAPI",
            "ephemeral",
            "csi",
        }
        assert all(set(v) <= allowed_volumes for v in pod.get("volumes", [])), name
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container.get("securityContext", {})
            where = f"{name}/{container['name']}"
            assert context.get("allowPrivilegeEscalation") is False, where
            assert not context.get("privileged"), where
            assert "ALL" in context.get("capabilities", {}).get("drop", []), where
            assert set(context.get("capabilities", {}).get("add", [])) <= RESTRICTED_CAPABILITIES
            assert (context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))) is True, where
            assert context.get("runAsUser", pod_context.get("runAsUser", 1)) != 0, where
            seccomp = context.get("seccompProfile", pod_context.get("seccompProfile", {}))
            assert seccomp.get("type") in {"RuntimeDefault", "Localhost"}, where
            assert not any("hostPort" in p for p in container.get("ports", [])), where
