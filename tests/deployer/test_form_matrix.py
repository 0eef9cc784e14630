"""Every choice on the Marketplace form deploys, and a Marketplace deploy is as protected as a
``helm install``.

The matrix is generated from ``schema.yaml`` and ``deployer.companions``, so a choice added to
the form, or a derivation added to the deployer, joins it:

- every single choice: each value of an enum property, each boolean property flipped, tried
  where it takes effect (with the switch of its feature on, ``autoscaling.enabled`` for
  ``autoscaling.metric``, and in its mode, ``ingress.mode=gatewayApi`` for
  ``ingress.gatewayApi.className``);
- every combination of the choices a derivation reads (autoscaling x each metric x
  PodMonitoring; each ingress mode x gRPC x a TLS certificate Secret).

Each case goes the way a Marketplace deploy goes: Google's ``provision.py`` writes the values
Secret (the form's values and ``__image_repo_prefix__``), and the deployer, given its
``values.yaml``, checks, derives and renders with the chart. It deploys: the render succeeds,
every object is valid for its kind (Kubernetes' schemas, the CRDs), each choice reaches the
chart unless a derivation changed it and said why, and what the values promise is rendered
(the HPA, the PodMonitoring a queue metric reads, a GRPCRoute only where gRPC is routed, the
release's own Istio host).

Then the Marketplace image shape: Triton runs as ``PREFIX:<publishedVersion>``, a tag that says
nothing of the release. For every case the Triton container of the Marketplace render and of a
``helm install`` of the same choices with NGC's image (``<release>-py3``) are compared, the
image aside: the arguments (``--http-max-input-size``, the restricted APIs...) are equal, and
so is the rest of the container.
"""

from __future__ import annotations

import functools
import itertools
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer import actions, companions, render, values
from tests.chart.helpers import validate_manifest
from tests.conftest import CHART_DIR
from tests.deployer.conftest import PUBLISHED_VERSION, SCHEMA
from tests.deployer.google_tools import provision_manifests, values_secret

FORM: dict[str, Any] = {"name": "tri", "namespace": "apps", "modelRepository": "gs://bucket/models"}
DEPLOYER_IMAGE = "gcr.io/my-project/triton/deployer:0.1.0"
EXAMPLES: dict[str, Any] = {"ingress.tls.secretName": "triton-tls"}
"""A value besides the default for each string property a derivation reads."""

DOCUMENT: dict[str, Any] = yaml.safe_load(SCHEMA.read_text())
PROPERTIES: dict[str, dict[str, Any]] = DOCUMENT["properties"]


def choices_of(key: str) -> list[Any]:
    """What the form offers for ``key``: an enum's values, both booleans, or a string's
    default and an example."""
    prop = PROPERTIES[key]
    if "enum" in prop:
        return list(prop["enum"])
    if prop.get("type") == "boolean":
        return [False, True]
    assert key in EXAMPLES, f"{key}: give EXAMPLES a value to try besides the default"
    return [prop.get("default", ""), EXAMPLES[key]]


def where_it_takes_effect(key: str) -> dict[str, Any]:
    """The form values that make ``key`` matter: the `.enabled` switch of each feature above
    it, and the mode a key under `X.<mode>.` belongs to (an enum `X.mode` offering it)."""
    parts = key.split(".")
    context: dict[str, Any] = {}
    for depth in range(1, len(parts)):
        prefix = ".".join(parts[:depth])
        switch = f"{prefix}.enabled"
        if switch != key and PROPERTIES.get(switch, {}).get("type") == "boolean":
            context[switch] = True
        mode = PROPERTIES.get(f"{prefix}.mode", {})
        if depth < len(parts) - 1 and parts[depth] in mode.get("enum", []):
            context[f"{prefix}.mode"] = parts[depth]
    return context


def single_choices() -> Iterator[tuple[str, dict[str, Any]]]:
    for key, prop in PROPERTIES.items():
        if "enum" in prop:
            offered = list(prop["enum"])
        elif prop.get("type") == "boolean":
            offered = [not prop.get("default", False)]
        else:
            continue
        context = where_it_takes_effect(key)
        shown = ",".join(f"{k}={json.dumps(v)}" for k, v in context.items())
        for choice in offered:
            name = f"{key}={json.dumps(choice)}" + (f" (with {shown})" if shown else "")
            yield name, {**context, key: choice}


def derivation_pairs() -> Iterator[tuple[str, dict[str, Any]]]:
    for rule in companions.RULES:
        for combination in itertools.product(*(choices_of(key) for key in rule.reads)):
            chosen = dict(zip(rule.reads, combination, strict=True))
            name = ",".join(f"{k}={json.dumps(v)}" for k, v in chosen.items())
            yield name, chosen


SINGLES = dict(single_choices())
PAIRS = dict(derivation_pairs())


def marketplace_plan(form: dict[str, Any], helm: Path) -> actions.Plan:
    """The deploy Marketplace runs: provision.py's values Secret, read by the deployer. Made
    once per form and helm (both tests of a form read the same plan, and never change it)."""
    return _plan(json.dumps(form, sort_keys=True), str(helm))


@functools.cache
def _plan(form: str, helm: str) -> actions.Plan:
    manifests = provision_manifests({**FORM, **json.loads(form)}, deployer_image=DEPLOYER_IMAGE)
    with tempfile.TemporaryDirectory() as workdir:
        values_file = Path(workdir) / "values.yaml"
        values_file.write_text(values_secret(manifests, FORM["name"])["stringData"]["values.yaml"])
        return actions.make_plan(
            actions.Inputs(chart=CHART_DIR, schema=SCHEMA, values=values_file, helm=Path(helm))
        )


def _value(chart_values: dict[str, Any], key: str) -> Any:
    node: Any = chart_values
    for part in key.split("."):
        node = node[part]
    return node


def _triton_deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [
        o
        for o in objects
        if o["kind"] == "Deployment" and not o["metadata"]["name"].endswith("-standby")
    ]
    return dict(deployment)


def _kinds(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        found.setdefault(obj["kind"], []).append(obj)
    return found


def assert_deploys(form: dict[str, Any], plan: actions.Plan) -> None:
    """The plan is what the form asked for, valid, and renders what its values promise."""
    for obj in [*plan.objects, *plan.tests]:
        validate_manifest(obj)
    assert plan.application is not None
    chart_values = plan.release.chart_values
    changed = {d.key: d for d in plan.release.derived if d.key is not None}
    for key, chosen in form.items():
        if key not in changed:
            assert _value(chart_values, key) == chosen, key
    for key, derived in changed.items():
        assert _value(chart_values, key) == derived.value, key
        assert derived.why
    kinds = _kinds(plan.objects)
    pod = _triton_deployment(plan.objects)["spec"]["template"]["spec"]
    accelerator = pod["nodeSelector"]["cloud.google.com/gke-accelerator"]
    assert accelerator == chart_values["gpu"]["accelerator"]
    autoscaling = chart_values["autoscaling"]
    assert ("HorizontalPodAutoscaler" in kinds) == autoscaling["enabled"]
    scraped = chart_values["metrics"]["podMonitoring"]["enabled"]
    assert ("PodMonitoring" in kinds) == scraped
    gauge = companions.GAUGE_ENGINES.get(autoscaling["engine"])
    if autoscaling["enabled"] and gauge:
        assert autoscaling["metric"] == gauge, "the engine reads this one gauge"
        assert "AutoscalingMetric" in kinds, "GKE reads the pods through it"
    elif autoscaling["enabled"] and autoscaling["metric"] in companions.QUEUE_METRICS:
        assert scraped, "a queue metric reads what Managed Prometheus scrapes"
    ingress = chart_values["ingress"]
    grpc_routed = ingress["mode"] == "gatewayApi" and ingress["grpc"]["enabled"]
    assert ("GRPCRoute" in kinds) == grpc_routed
    info = {i["name"]: i["value"] for i in plan.application["spec"]["info"]}
    if ingress["mode"] == "gatewayApi":
        (gateway,) = kinds["Gateway"]
        assert gateway["spec"]["gatewayClassName"] == ingress["gatewayApi"]["className"]
        tls = bool(ingress.get("tls", {}).get("enabled"))
        assert ingress["grpc"]["enabled"] == (tls and form.get("ingress.grpc.enabled", True))
        if not tls:
            assert info["gRPC at the edge"].startswith("off: GKE's load balancers speak gRPC")
    if ingress["mode"] == "istio":
        (gateway,) = kinds["Gateway"]
        hosts = {h for server in gateway["spec"]["servers"] for h in server["hosts"]}
        assert hosts == {"tri.apps.triton.internal"}, "the release's own name, never *"
        assert "tri.apps.triton.internal" in info["Ingress host (HTTP)"]
    if autoscaling["enabled"]:
        needs = "read by GKE from the pods" if gauge else "Custom Metrics Stackdriver Adapter"
        assert needs in info["Autoscaling"]


@pytest.mark.parametrize("form", list(SINGLES.values()), ids=list(SINGLES))
def test_every_single_choice_deploys(form: dict[str, Any], helm4: Path) -> None:
    assert_deploys(form, marketplace_plan(form, helm4))


@pytest.mark.parametrize("form", list(PAIRS.values()), ids=list(PAIRS))
def test_every_combination_a_derivation_reads_deploys(form: dict[str, Any], helm4: Path) -> None:
    assert_deploys(form, marketplace_plan(form, helm4))


def test_the_matrix_covers_the_form() -> None:
    """Every enum value and boolean of the form is in the matrix, and each derivation's
    inputs are tried in every combination."""
    tried = {(k, json.dumps(v)) for form in SINGLES.values() for k, v in form.items()}
    for key, prop in PROPERTIES.items():
        for choice in prop.get("enum", []):
            assert (key, json.dumps(choice)) in tried
        if prop.get("type") == "boolean":
            assert (key, json.dumps(not prop.get("default", False))) in tried
    assert len(PAIRS) == sum(
        len(list(itertools.product(*(choices_of(k) for k in rule.reads))))
        for rule in companions.RULES
    )
    assert {"autoscaling.enabled", "ingress.mode", "ingress.tls.secretName"} <= {
        key for rule in companions.RULES for key in rule.reads
    }


def _triton(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = _triton_deployment(objects)
    (container,) = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "triton"
    ]
    return dict(container)


def helm_install_of(chart_values: dict[str, Any], helm: Path) -> list[dict[str, Any]]:
    """What `helm install` renders for the same choices with NGC's image: the chart values
    without the image Marketplace republished."""
    republished = {
        key.removeprefix("image.") for key in values.load_schema(SCHEMA, chart=CHART_DIR).images[""]
    }
    own_image = {k: v for k, v in chart_values["image"].items() if k not in republished}
    return render.render(
        helm=helm,
        chart=CHART_DIR,
        release=FORM["name"],
        namespace=FORM["namespace"],
        values={**chart_values, "image": own_image},
    )


@pytest.mark.parametrize(
    "form", [{}, *SINGLES.values(), *PAIRS.values()], ids=["defaults", *SINGLES, *PAIRS]
)
def test_marketplaces_image_keeps_every_protection_of_a_helm_install(
    form: dict[str, Any], helm4: Path
) -> None:
    plan = marketplace_plan(form, helm4)
    marketplace = _triton(plan.objects)
    assert marketplace["image"] == f"gcr.io/my-project/triton:{PUBLISHED_VERSION}"
    helm_install = _triton(helm_install_of(plan.release.chart_values, helm4))
    assert helm_install["image"].startswith("nvcr.io/nvidia/tritonserver:")
    assert marketplace["args"] == helm_install["args"]
    assert "--http-max-input-size=1048576" in marketplace["args"]
    assert {k: v for k, v in marketplace.items() if k != "image"} == {
        k: v for k, v in helm_install.items() if k != "image"
    }
