#!/usr/bin/env bash
# `make e2e`: the deployer against a real cluster (GKE, or kind for the failure paths), run
# with nothing but the namespaced Role it documents (deployer/rbac.yaml). Not part of CI.
#
#   KUBECONFIG=~/.kube/config E2E_VALUES=my-values.yaml make e2e
#
# E2E_NAMESPACE (default triton-e2e) overrides the values file's namespace; E2E_TIMEOUT is the
# readiness timeout in seconds; E2E_KEEP=1 leaves the application and namespace in place.
# E2E_IMAGE=REGISTRY/triton-inference-server/deployer:0.1.0 runs the deployer from that image
# (`make image`), its command line reached with --entrypoint triton-gke-deployer, through
# E2E_CONTAINER_TOOL (default: docker; the image's own entrypoint is Marketplace's deploy).
set -euo pipefail
cd "$(dirname "$0")/../.."

namespace=${E2E_NAMESPACE:-triton-e2e}
values=${E2E_VALUES:-tests/deployer/e2e-values.yaml}
timeout=${E2E_TIMEOUT:-1200}
# Pinned to a commit (security/third-party.yaml): the same CRD as ../shared/crds.
app_crd=https://raw.githubusercontent.com/GoogleCloudPlatform/marketplace-k8s-app-tools/7d32ea003d04d571f026a0b23c84fd5166586f53/crd/app-crd.yaml
work=build/e2e
mkdir -p "$work"

command -v kubectl >/dev/null || { echo "make e2e needs kubectl and a cluster in \$KUBECONFIG" >&2; exit 2; }
echo "==> cluster $(kubectl config current-context), namespace $namespace"

# Cluster-wide prerequisites, with your own credentials (Marketplace installs these itself).
kubectl get crd applications.app.k8s.io >/dev/null 2>&1 || kubectl apply -f "$app_crd"
kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -n "$namespace" -f deployer/rbac.yaml

# From here on the deployer authenticates as its ServiceAccount: only its Role applies.
kubeconfig="$work/deployer.kubeconfig"
rm -f "$kubeconfig"
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
ca=$(kubectl config view --raw --minify --flatten -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
token=$(kubectl create token triton-deployer -n "$namespace" --duration=1h)
kubectl config --kubeconfig="$kubeconfig" set-cluster e2e --server="$server" >/dev/null
if [[ -n "$ca" ]]; then
  kubectl config --kubeconfig="$kubeconfig" set clusters.e2e.certificate-authority-data "$ca" >/dev/null
fi
kubectl config --kubeconfig="$kubeconfig" set-credentials triton-deployer --token="$token" >/dev/null
kubectl config --kubeconfig="$kubeconfig" set-context e2e --cluster=e2e --user=triton-deployer \
  --namespace="$namespace" >/dev/null
kubectl config --kubeconfig="$kubeconfig" use-context e2e >/dev/null

python - "$values" "$namespace" "$work/values.yaml" <<'PY'
import sys, yaml
source, namespace, target = sys.argv[1:]
values = yaml.safe_load(open(source)) or {}
values["namespace"] = namespace
yaml.safe_dump(values, open(target, "w"))
PY

if [[ -n "${E2E_IMAGE:-}" ]]; then
  read -r -a container_tool <<< "${E2E_CONTAINER_TOOL:-docker}"
  echo "==> the deployer from $E2E_IMAGE"
  deployer=("${container_tool[@]}" run --rm --network host --user "$(id -u):$(id -g)"
            --volume "$PWD/$work:/e2e:ro" --entrypoint triton-gke-deployer "$E2E_IMAGE")
  common=(--values /e2e/values.yaml --kubeconfig /e2e/deployer.kubeconfig)
else
  deployer=(python -m deployer)
  common=(--values "$work/values.yaml" --kubeconfig "$kubeconfig" --helm "${HELM:-helm}")
fi
cleanup() {
  if [[ -z "${E2E_KEEP:-}" ]]; then
    echo "==> delete"
    "${deployer[@]}" delete "${common[@]}" --timeout 300 || true
    kubectl delete namespace "$namespace" --ignore-not-found --wait=false
  fi
}
trap cleanup EXIT

echo "==> deploy"
"${deployer[@]}" deploy "${common[@]}" --timeout "$timeout"
echo "==> status"
"${deployer[@]}" status "${common[@]}"
echo "==> a second deploy changes nothing"
"${deployer[@]}" deploy "${common[@]}" --timeout "$timeout"
