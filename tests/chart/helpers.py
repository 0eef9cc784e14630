"""Render the chart with the real helm and validate every object it produces.

In the manner of apache/airflow's helm tests: ``render_chart`` runs ``helm template``, raises
``HelmFailedError`` (carrying helm's stderr) when the chart refuses the values, parses every
document and validates each object, built-in kinds with ``kubernetes-validate`` in strict mode
for the oldest and newest Kubernetes we support, custom resources against the upstream CRDs in
``../shared/crds``. Renders are cached: helm 3 and 4 give the same output, and many tests read
one rendering.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate import utils
from referencing import Registry, Resource

from standins.kube.control_plane import GKE_CRDS_DIR
from tests.chart import render_cache
from tests.conftest import CHART_DIR, CRDS_DIR

KUBE_VERSIONS = ("1.30", utils.major_minor(kubernetes_validate.latest_version()))
"""Kubernetes versions every built-in object must validate against (oldest GKE we support,
newest the validator ships)."""

CI_VALUES_FILES = tuple(sorted((CHART_DIR / "ci").glob("*-values.yaml")))
"""The chart's own per-feature values files, each rendered and linted."""

Manifest = dict[str, Any]

CHART_RELEASE = str(
    yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["annotations"]["ngcRelease"]
)
"""The NGC release this chart version ships (Chart.yaml's ``ngcRelease``): the default
``image.release``."""

# libyaml's loader where PyYAML was built with it: the CRD files are megabytes of YAML.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SEPARATOR = re.compile(r"^---\s*$", re.MULTILINE)
_SOURCE = re.compile(r"^# Source: (\S+)$", re.MULTILINE)


CRD_DIRS = (CRDS_DIR, GKE_CRDS_DIR)
"""Where custom resource definitions are read: the shared upstream set, and the GKE Gateway
policy CRDs this chart also renders."""


class HelmFailedError(Exception):
    """``helm template`` refused the values; ``stderr`` holds its message."""

    def __init__(self, stderr: str) -> None:
        super().__init__(stderr)
        self.stderr = stderr


class ManifestInvalidError(AssertionError):
    """A rendered object does not match its kind's schema."""


def _strict_crd_schema(schema: Any) -> Any:
    """A CRD's openAPIV3Schema made strict: objects that list their properties refuse unknown
    fields, as the API server's strict field validation does (it would otherwise prune them
    silently)."""
    if isinstance(schema, dict):
        out = {key: _strict_crd_schema(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
            and "additionalProperties" not in schema
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict_crd_schema(item) for item in schema]
    return schema


@functools.cache
def crd_schemas() -> dict[tuple[str, str], jsonschema.Draft7Validator]:
    """(apiVersion, kind) -> validator of its strict schema, from every CRD in ``CRD_DIRS``
    (a folder that is absent contributes nothing)."""
    schemas: dict[tuple[str, str], jsonschema.Draft7Validator] = {}
    paths = sorted(p for folder in CRD_DIRS if folder.is_dir() for p in folder.glob("*.yaml"))
    for path in paths:
        for crd in yaml.load_all(path.read_text(), Loader=_LOADER):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = _strict_crd_schema(version["schema"]["openAPIV3Schema"])
                # The API server handles these itself; CRD schemas often leave them out.
                schema["properties"] |= {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"type": "object"},
                }
                key = (f"{group}/{version['name']}", kind)
                schemas[key] = jsonschema.Draft7Validator(schema)
    return schemas


def is_builtin(manifest: Mapping[str, Any]) -> bool:
    """True for kinds Kubernetes itself serves (their groups have no dot, or end in k8s.io
    and are not an add-on such as app.k8s.io or gateway.networking.k8s.io)."""
    api_version = str(manifest["apiVersion"])
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    addon_groups = ("app.k8s.io", "gateway.networking.k8s.io")
    return "." not in group or (group.endswith(".k8s.io") and group not in addon_groups)


@functools.cache
def _builtin_validator(api_version: str, kind: str, version: str) -> Any:
    """A strict validator for one built-in kind at one Kubernetes version, built from
    kubernetes-validate's schemas once (its ``validate`` re-reads them on every call, which
    costs ~20 ms an object). Resolution follows kubernetes_validate.validate."""
    schema_version = [v for v in utils.all_versions() if utils.major_minor(v) == version][-1]
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"kubernetes-json-schema/v{schema_version}-local-strict"
    try:
        schema = utils.schema_contents(f"{folder}/{kind.lower()}-{group_version}.json", version)
    except FileNotFoundError:
        message = f"no schema for {api_version} {kind} in Kubernetes {version}"
        raise ManifestInvalidError(message) from None
    definitions = utils.schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


@functools.cache
def _validate_once(manifest_json: str) -> None:
    manifest = json.loads(manifest_json)
    name = f"{manifest['kind']}/{manifest['metadata']['name']}"
    if is_builtin(manifest):
        for version in KUBE_VERSIONS:
            validator = _builtin_validator(manifest["apiVersion"], manifest["kind"], version)
            try:
                validator.validate(manifest)
            except jsonschema.ValidationError as exc:
                path = ".".join(map(str, exc.absolute_path))
                raise ManifestInvalidError(
                    f"{name} is invalid for Kubernetes {version} at {path}: {exc.message}"
                ) from exc
        return
    validator = crd_schemas().get((manifest["apiVersion"], manifest["kind"]))
    if validator is None:
        if not CRDS_DIR.is_dir():
            return  # reported by test_custom_resources_have_crds, which skips with the reason
        folders = ", ".join(map(str, CRD_DIRS))
        raise ManifestInvalidError(
            f"{name}: no CRD for {manifest['apiVersion']} {manifest['kind']} in {folders}"
        )
    try:
        validator.validate(manifest)
    except jsonschema.ValidationError as exc:
        path = ".".join(map(str, exc.absolute_path))
        message = f"{name} is invalid against its CRD at {path}: {exc.message}"
        raise ManifestInvalidError(message) from exc


def validate_manifest(manifest: Mapping[str, Any]) -> None:
    """Raise ManifestInvalidError unless ``manifest`` is valid for its kind (cached per
    distinct object)."""
    _validate_once(json.dumps(manifest, sort_keys=True))


@functools.cache
def _render(
    helm: str,
    values_json: str,
    values_files: tuple[str, ...],
    release: str,
    namespace: str,
    extra_args: tuple[str, ...],
    chart: str,
) -> tuple[tuple[str, Manifest], ...]:
    """Every object helm renders, with the template it came from (``templates/x.yaml``)."""
    result = render_cache.template(
        helm, chart, release, namespace, values_files, values_json, extra_args
    )
    if result.returncode != 0:
        raise HelmFailedError(result.stderr)
    manifests = []
    for document in _SEPARATOR.split(result.stdout):
        manifest = yaml.load(document, Loader=_LOADER)
        if not manifest:
            continue
        source = _SOURCE.search(document)
        # "# Source: CHART/templates/x.yaml" precedes each object helm renders.
        template = source.group(1).split("/", 1)[1] if source else ""
        validate_manifest(manifest)
        manifests.append((template, manifest))
    return tuple(manifests)


def render_chart(
    helm: Path,
    values: Mapping[str, Any] | None = None,
    *,
    values_files: Sequence[Path] = (),
    show_only: Iterable[str] = (),
    release: str = "triton",
    namespace: str = "serving",
    extra_args: Sequence[str] = (),
    chart: Path = CHART_DIR,
) -> list[Manifest]:
    """Render ``chart`` (Triton's unless told) with ``helm`` and return its objects, each
    already validated.

    ``values`` default to a model repository only; ``show_only`` keeps the objects of those
    templates (``["templates/hpa.yaml"]``, as helm's ``--show-only``, but an empty template
    gives no object rather than an error; every template is still rendered, so the chart's
    checks still run) and of those kinds (``["Deployment"]``). Raises HelmFailedError when helm
    refuses the values.
    """
    chosen = {"modelRepository": "gs://bucket/models"} if values is None else dict(values)
    templates = {entry for entry in show_only if entry.startswith("templates/")}
    kinds = {entry for entry in show_only if not entry.startswith("templates/")}
    manifests = _render(
        str(helm),
        json.dumps(chosen, sort_keys=True),
        tuple(str(p) for p in values_files),
        release,
        namespace,
        tuple(extra_args),
        str(chart),
    )
    return [
        copy.deepcopy(manifest)
        for source, manifest in manifests
        if (not templates or source in templates) and (not kinds or manifest["kind"] in kinds)
    ]


def only(manifests: Sequence[Manifest], kind: str, name_suffix: str = "") -> Manifest:
    """The single object of ``kind`` (whose name ends with ``name_suffix``); fails if there is
    not exactly one."""
    found = [
        m
        for m in manifests
        if m["kind"] == kind and str(m["metadata"]["name"]).endswith(name_suffix)
    ]
    assert len(found) == 1, f"expected one {kind}*{name_suffix}, found {len(found)}"
    return found[0]


def field(obj: Any, path: str) -> Any:
    """Read a dotted path with list indexes and name selectors from a manifest:
    ``field(dep, "spec.template.spec.containers[name=triton].args")``. Missing -> None."""
    current = obj
    for part in path.replace("[", ".[").split("."):
        if not part:
            continue
        if current is None:
            return None
        if part.startswith("["):
            selector = part[1:-1]
            if "=" in selector:
                key, wanted = selector.split("=", 1)
                current = next((i for i in current if str(i.get(key)) == wanted), None)
            else:
                index = int(selector)
                current = current[index] if -len(current) <= index < len(current) else None
        else:
            current = current.get(part) if isinstance(current, dict) else None
    return current


def triton_container(manifests: Sequence[Manifest]) -> Manifest:
    """The Triton container of the release's main Deployment."""
    containers: list[Manifest] = [
        c
        for m in manifests
        if m["kind"] == "Deployment"
        for c in m["spec"]["template"]["spec"]["containers"]
        if c["name"] == "triton"
    ]
    assert len(containers) == 1, f"expected one Triton container, found {len(containers)}"
    return containers[0]


def is_hook(manifest: Mapping[str, Any]) -> bool:
    """True for helm hooks (the `helm test` pod), which the deployer does not apply."""
    return "helm.sh/hook" in (manifest["metadata"].get("annotations") or {})


def _host_covers(pattern: str, host: str) -> bool:
    """True when the Istio host ``pattern`` (`*`, `*.suffix` or a name) matches ``host``."""
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return pattern == host


def conflicting_istio_gateways(gateways: Sequence[Manifest]) -> list[str]:
    """The conflicts Istio's analyzer reports as IST0145 ConflictingGateways: two Gateways
    that select the same gateway workload, use the same port, and have hosts that are the same
    or overlap (Istio then serves only one of them). One line per conflicting pair of servers."""
    servers = [
        (
            f"{g['metadata'].get('namespace', '')}/{g['metadata']['name']}",
            json.dumps(g["spec"].get("selector") or {}, sort_keys=True),
            server["port"]["number"],
            [h.split("/", 1)[-1] for h in server["hosts"]],  # `namespace/host` binds a host
        )
        for g in gateways
        for server in g["spec"]["servers"]
    ]
    conflicts = []
    for i, (name, selector, port, hosts) in enumerate(servers):
        for other, other_selector, other_port, other_hosts in servers[i + 1 :]:
            if other == name or (selector, port) != (other_selector, other_port):
                continue
            shared = [
                a for a in hosts for b in other_hosts if _host_covers(a, b) or _host_covers(b, a)
            ]
            if shared:
                conflicts.append(f"{name} and {other}: port {port}, hosts {shared}")
    return conflicts


def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector matching (matchLabels, and matchExpressions with In/NotIn/
    Exists/DoesNotExist); an empty selector selects everything."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        present = key in labels
        matched = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]
        if not matched:
            return False
    return True


def network_policies_admit(
    policies: Sequence[Manifest],
    *,
    pod_labels: Mapping[str, str],
    port: str,
    source: Mapping[str, Any],
) -> bool:
    """Whether NetworkPolicies admit a connection to the named container ``port`` of a pod
    with ``pod_labels``, following Kubernetes' ingress semantics: a pod no policy selects
    admits everything; otherwise some rule of a selecting policy must list the port (or no
    ports) and a peer that matches (or no peers). ``source`` is ``{"ip": "a.b.c.d"}`` for a
    client outside the cluster, or ``{"namespace": name, "labels": {...}}`` for a pod."""
    selecting = [
        p
        for p in policies
        if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and _selects(p["spec"]["podSelector"], pod_labels)
    ]
    if not selecting:
        return True

    def peer_matches(peer: Mapping[str, Any], policy_namespace: str | None) -> bool:
        if "ipBlock" in peer:
            if "ip" not in source:
                return False
            address = ipaddress.ip_address(source["ip"])
            block = peer["ipBlock"]
            excluded = any(address in ipaddress.ip_network(e) for e in block.get("except", []))
            return address in ipaddress.ip_network(block["cidr"]) and not excluded
        if "ip" in source:
            return False
        namespace_labels = {"kubernetes.io/metadata.name": source["namespace"]}
        if "namespaceSelector" in peer:
            in_namespace = _selects(peer["namespaceSelector"], namespace_labels)
        else:
            in_namespace = source["namespace"] == policy_namespace
        return in_namespace and _selects(peer.get("podSelector"), source["labels"])

    for policy in selecting:
        for rule in policy["spec"].get("ingress") or []:
            ports = [p.get("port") for p in rule.get("ports") or []]
            if ports and port not in ports:
                continue
            peers = rule.get("from") or []
            namespace = policy["metadata"].get("namespace")
            if not peers or any(peer_matches(peer, namespace) for peer in peers):
                return True
    return False
