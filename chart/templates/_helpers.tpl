{{/* The chart name, overridable: the base of the `app.kubernetes.io/name` label. */}}
{{- define "triton.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object names: unique per release, at most 63 characters (DNS label). Suffixed names
(`-canary`, `-standby` ...) are cut from a base of 52 so that the suffix always fits. */}}
{{- define "triton.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels on every object; versions live here, never in selectors. */}}
{{- define "triton.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "triton.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels: immutable once applied, so only name and instance. */}}
{{- define "triton.selectorLabels" -}}
app.kubernetes.io/name: {{ include "triton.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount Triton runs as: the created one, or an existing one named. */}}
{{- define "triton.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "triton.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false: name an existing ServiceAccount" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference from {registry, repository, tag[, digest]}: a digest pins it. */}}
{{- define "triton.imageRef" -}}
{{- $prefix := ternary (printf "%s/" .registry) "" (ne (default "" .registry) "") }}
{{- if .digest }}
{{- printf "%s%s@%s" $prefix .repository .digest }}
{{- else }}
{{- printf "%s%s:%s" $prefix .repository .tag }}
{{- end }}
{{- end }}

{{/* The most Triton pods this release can run: what a PodDisruptionBudget is worth against. */}}
{{- define "triton.maxReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ int .Values.autoscaling.maxReplicas }}{{ else }}{{ int .Values.replicaCount }}{{ end }}
{{- end }}

{{/* "true" when the PodDisruptionBudget is rendered (only useful with more than one pod). */}}
{{- define "triton.pdb.enabled" -}}
{{- if and .Values.podDisruptionBudget.enabled (gt (int (include "triton.maxReplicas" .)) 1) }}true{{ end }}
{{- end }}

{{/* The tritonserver arguments, one per line, every valued flag written `--flag=value`
(the local runner in deployer/local.py replaces flags by name). */}}
{{- define "triton.args" -}}
{{- if not .Values.modelRepository }}
{{- fail "modelRepository is required: set it to the Triton model repository, e.g. --set modelRepository=gs://BUCKET/PATH" }}
{{- end -}}
- --model-repository={{ include "triton.modelRepositoryPath" . }}
- --model-control-mode={{ .Values.server.modelControlMode }}
- --model-load-thread-count={{ .Values.modelLoading.threadCount }}
{{- if .Values.server.disableAutoCompleteConfig }}
- --disable-auto-complete-config
{{- end }}
- --log-verbose={{ .Values.server.logVerbose }}
- --allow-gpu-metrics={{ and .Values.server.allowGpuMetrics (gt (int .Values.gpu.count) 0) }}
{{- range $key, $value := .Values.server.metricsConfig }}
- --metrics-config={{ $key }}={{ $value }}
{{- end }}
- --exit-timeout-secs={{ .Values.server.exitTimeoutSeconds }}
{{- with .Values.security.restrictedApi }}
{{- if .enabled }}
{{- /* $(TRITON_ADMIN_KEY) is expanded by the kubelet from the Secret-backed variable. */}}
{{- $rule := printf "%s:%s=$(%s)" (join "," .apis) .header (include "triton.adminKeyEnv" $) }}
- --http-restricted-api={{ $rule }}
- --grpc-restricted-protocol={{ $rule }}
{{- end }}
{{- end }}
{{- range .Values.server.extraArgs }}
- {{ . }}
{{- end }}
{{- end }}

{{/* The bucket and the path inside it of a `gs://BUCKET/PATH` modelRepository, as a dict
{bucket, path} (path without slashes at either end; empty for a whole bucket). */}}
{{- define "triton.gcsLocation" -}}
{{- $parts := splitn "/" 2 (trimPrefix "gs://" .Values.modelRepository) }}
bucket: {{ $parts._0 | quote }}
path: {{ trimAll "/" (default "" $parts._1) | quote }}
{{- end }}

{{/* The repository Triton reads: modelRepository itself, or its local form when the model
loading options put it on a mounted volume (the FUSE mount, or the init container's copy). */}}
{{- define "triton.modelRepositoryPath" -}}
{{- $loading := .Values.modelLoading }}
{{- if $loading.gcsFuse.enabled }}
{{- /* The mount holds the repository's folder only (only-dir), so its root is the repository. */}}
{{- $loading.gcsFuse.mountPath }}
{{- else if $loading.cache.enabled }}
{{- trimSuffix "/" $loading.cache.mountPath }}/repository
{{- else }}
{{- .Values.modelRepository }}
{{- end }}
{{- end }}

{{/* The gcsfuse mount options of modelLoading.gcsFuse, comma-separated as the CSI driver's
`mountOptions` attribute wants them. Only the repository's folder is mounted (`only-dir`), so
the metadata prefetch lists nothing else; `implicit-dirs` because uploads (ours, gcloud's)
write objects without folder placeholders. */}}
{{- define "triton.gcsFuseMountOptions" -}}
{{- $fuse := .Values.modelLoading.gcsFuse }}
{{- $location := include "triton.gcsLocation" . | fromYaml }}
{{- $options := list "implicit-dirs" }}
{{- with $location.path }}
{{- $options = append $options (printf "only-dir=%s" .) }}
{{- end }}
{{- if and $fuse.parallelDownloads (ne $fuse.fileCache "none") }}
{{- $options = append $options "file-cache:enable-parallel-downloads:true" }}
{{- end }}
{{- if gt (int $fuse.readAheadKb) 0 }}
{{- $options = append $options (printf "read_ahead_kb=%d" (int $fuse.readAheadKb)) }}
{{- end }}
{{- join "," (concat $options $fuse.extraMountOptions) }}
{{- end }}

{{/* The Triton container's shell line with gpu.mps.enabled: start the MPS control daemon (its
pipe and log folders under the /tmp emptyDir), stop with what to change if it cannot start, then
become tritonserver with the container's args ("$@"), so signals and the exit code are Triton's. */}}
{{- define "triton.mpsLauncher" -}}
mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY" && {{ .Values.gpu.mps.controlPath }} -d || { echo "gpu.mps.enabled: could not start the MPS control daemon ({{ .Values.gpu.mps.controlPath }} -d): set gpu.mps.controlPath to nvidia-cuda-mps-control in this image, or disable gpu.mps" >&2; exit 1; }; exec tritonserver "$@"
{{- end }}

{{/* Node selector terms that place Triton on the right GPUs in GKE. */}}
{{- define "triton.gpuNodeSelector" -}}
{{- with .Values.gpu }}
{{- if gt (int .count) 0 }}
{{- with .accelerator }}
cloud.google.com/gke-accelerator: {{ . }}
{{- end }}
{{- with .partitionSize }}
cloud.google.com/gke-gpu-partition-size: {{ . }}
{{- end }}
{{- if .sharing.strategy }}
cloud.google.com/gke-gpu-sharing-strategy: {{ .sharing.strategy }}
cloud.google.com/gke-max-shared-clients-per-gpu: {{ .sharing.maxSharedClientsPerGpu | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The kinds this release renders, as Application componentKinds entries; each line follows
the condition of its template, and a test holds the two together. */}}
{{- define "triton.componentKinds" -}}
- {group: v1, kind: Service}
- {group: apps/v1, kind: Deployment}
{{- if .Values.serviceAccount.create }}
- {group: v1, kind: ServiceAccount}
{{- end }}
{{- if include "triton.pdb.enabled" . }}
- {group: policy/v1, kind: PodDisruptionBudget}
{{- end }}
{{- if .Values.autoscaling.enabled }}
- {group: autoscaling/v2, kind: HorizontalPodAutoscaler}
{{- end }}
{{- if eq .Values.ingress.mode "istio" }}
{{- if .Values.ingress.istio.createGateway }}
- {group: networking.istio.io/v1, kind: Gateway}
{{- end }}
- {group: networking.istio.io/v1, kind: VirtualService}
{{- end }}
{{- if eq .Values.ingress.mode "gatewayApi" }}
{{- if .Values.ingress.gatewayApi.createGateway }}
- {group: gateway.networking.k8s.io/v1, kind: Gateway}
{{- end }}
- {group: gateway.networking.k8s.io/v1, kind: HTTPRoute}
{{- if .Values.ingress.grpc.enabled }}
- {group: gateway.networking.k8s.io/v1, kind: GRPCRoute}
{{- end }}
{{- end }}
{{- if and .Values.standby.enabled (not .Values.standby.existingPriorityClass) }}
- {group: scheduling.k8s.io/v1, kind: PriorityClass}
{{- end }}
{{- if .Values.metrics.podMonitoring.enabled }}
- {group: monitoring.googleapis.com/v1, kind: PodMonitoring}
{{- end }}
{{- if .Values.metrics.serviceMonitor.enabled }}
- {group: monitoring.coreos.com/v1, kind: ServiceMonitor}
{{- end }}
{{- if .Values.metrics.grafanaDashboard.enabled }}
- {group: v1, kind: ConfigMap}
{{- end }}
{{- if and .Values.security.restrictedApi.enabled (not .Values.security.restrictedApi.existingSecret) }}
- {group: v1, kind: Secret}
{{- end }}
{{- if .Values.networkPolicy.enabled }}
- {group: networking.k8s.io/v1, kind: NetworkPolicy}
{{- end }}
{{- if .Values.security.jwt.enabled }}
- {group: security.istio.io/v1, kind: RequestAuthentication}
- {group: security.istio.io/v1, kind: AuthorizationPolicy}
{{- end }}
{{- if include "triton.gkeHealthCheck.enabled" . }}
- {group: networking.gke.io/v1, kind: HealthCheckPolicy}
{{- end }}
{{- if or .Values.security.iap.enabled (include "triton.gkeGateway" .) }}
- {group: networking.gke.io/v1, kind: GCPBackendPolicy}
{{- end }}
{{- end }}

{{/* "true" when the GKE HealthCheckPolicy is rendered: Gateway API mode on a GKE class, or
attached to an existing Gateway (assumed GKE unless gkeHealthCheck is turned off). */}}
{{- define "triton.gkeHealthCheck.enabled" -}}
{{- $gw := .Values.ingress.gatewayApi }}
{{- if and (eq .Values.ingress.mode "gatewayApi") $gw.gkeHealthCheck (or (not $gw.createGateway) (hasPrefix "gke-" $gw.className)) }}true{{ end }}
{{- end }}

{{/* The Secret holding the restricted-API key: the one named, or the chart's own. */}}
{{- define "triton.adminKeySecretName" -}}
{{- default (printf "%s-admin-key" (include "triton.fullname" .)) .Values.security.restrictedApi.existingSecret }}
{{- end }}

{{/* Selector labels of the warm-standby placeholders: a name of their own, so Triton's
Service, PodDisruptionBudget and NetworkPolicy never select them. */}}
{{- define "triton.standbySelectorLabels" -}}
app.kubernetes.io/name: {{ include "triton.name" . | trunc 55 | trimSuffix "-" }}-standby
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The cluster-scoped PriorityClass of the placeholders: the namespace is part of the name,
since releases of the same name in two namespaces would otherwise share it. */}}
{{- define "triton.standbyPriorityClassName" -}}
{{- printf "%s-%s" .Release.Namespace (include "triton.fullname" .) | trunc 55 | trimSuffix "-" }}-standby
{{- end }}

{{/* The pod label that scopes the GPU duty-cycle metric to this release: Cloud Monitoring
exposes pod labels as metadata.user_labels, and HPA selector keys may not hold a `/` there. */}}
{{- define "triton.metricReleaseLabel" -}}
triton_release
{{- end }}

{{/* Bad combinations of values, refused before anything is rendered. */}}
{{- define "triton.validate" -}}
{{- $v := .Values }}
{{- $startupBudget := mul (int $v.probes.startup.periodSeconds) (int $v.probes.startup.failureThreshold) }}
{{- if lt (int $v.progressDeadlineSeconds) (int $startupBudget) }}
{{- fail (printf "progressDeadlineSeconds (%d) is shorter than the startup budget, probes.startup.periodSeconds x failureThreshold (%d s): the rollout would fail while the models still load; raise progressDeadlineSeconds to at least %d plus the time a GPU node and the image take to arrive, or shorten the startup budget" (int $v.progressDeadlineSeconds) (int $startupBudget) (int $startupBudget)) }}
{{- end }}
{{- if and $v.gpu.partitionSize $v.gpu.sharing.strategy (ne $v.gpu.sharing.strategy "time-sharing") }}
{{- fail "gpu.partitionSize (MIG) combines only with gpu.sharing.strategy=time-sharing on GKE: clear one of them" }}
{{- end }}
{{- if and $v.gpu.mps.enabled (eq (int $v.gpu.count) 0) }}
{{- fail "gpu.mps.enabled needs GPUs: set gpu.count, or leave gpu.mps.enabled false on CPU nodes" }}
{{- end }}
{{- if and $v.gpu.mps.enabled $v.gpu.sharing.strategy }}
{{- fail (printf "gpu.mps.enabled starts a daemon that expects the pod's GPUs to itself, but gpu.sharing.strategy=%s shares them with other pods (with mps, GKE runs the daemon): clear one of them" $v.gpu.sharing.strategy) }}
{{- end }}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas (%d) is above autoscaling.maxReplicas (%d): lower minReplicas or raise maxReplicas" (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- end }}
{{- if and $v.autoscaling.enabled (ne $v.autoscaling.metric "gpuDutyCycle") (not $v.metrics.podMonitoring.enabled) }}
{{- fail (printf "autoscaling.metric=%s reads Triton's metrics through Managed Prometheus: set metrics.podMonitoring.enabled=true, or use autoscaling.metric=gpuDutyCycle" $v.autoscaling.metric) }}
{{- end }}
{{- if and $v.autoscaling.enabled (eq $v.autoscaling.metric "gpuDutyCycle") (eq (int $v.gpu.count) 0) }}
{{- fail "autoscaling.metric=gpuDutyCycle needs GPUs: set gpu.count above 0, or scale on queueTime or pendingRequests" }}
{{- end }}
{{- if eq $v.ingress.mode "gatewayApi" }}
{{- if and $v.ingress.gatewayApi.createGateway (not $v.ingress.gatewayApi.className) }}
{{- fail "ingress.mode=gatewayApi creates a Gateway but ingress.gatewayApi.className is empty: set a GatewayClass (e.g. gke-l7-regional-external-managed), or set ingress.gatewayApi.createGateway=false and ingress.gatewayApi.parentRef.name" }}
{{- end }}
{{- if and (not $v.ingress.gatewayApi.createGateway) (not $v.ingress.gatewayApi.parentRef.name) }}
{{- fail "ingress.mode=gatewayApi with createGateway=false needs a parent: set ingress.gatewayApi.parentRef.name to an existing Gateway" }}
{{- end }}
{{- if and $v.ingress.grpc.enabled (or (not $v.ingress.grpc.host) (eq $v.ingress.grpc.host $v.ingress.host)) }}
{{- fail "ingress.mode=gatewayApi routes gRPC with a GRPCRoute, which may not share a hostname with the HTTPRoute: set ingress.grpc.host to its own name (e.g. grpc.example.com), or ingress.grpc.enabled=false" }}
{{- end }}
{{- end }}
{{- if and (eq $v.ingress.mode "gatewayApi") (not $v.ingress.gatewayApi.regexPathMatch) (lt (len $v.ingress.inferencePaths) 3) }}
{{- fail (printf "ingress.inferencePaths is %s, but with ingress.gatewayApi.regexPathMatch=false the edge routes the prefix /v2/models/, which passes every endpoint under it: set regexPathMatch=true (Istio, Envoy Gateway) to narrow it, or list infer, generate and generate_stream" (toJson $v.ingress.inferencePaths)) }}
{{- end }}
{{- if and $v.ingress.openai.enabled (eq $v.ingress.mode "none") }}
{{- fail "ingress.openai routes the OpenAI-compatible frontend at the edge: set ingress.mode to istio or gatewayApi, or ingress.openai.enabled=false" }}
{{- end }}
{{- if and $v.ingress.openai.enabled (not $v.ingress.openai.serviceName) }}
{{- fail "ingress.openai.enabled needs ingress.openai.serviceName: the Service of the process running Triton's OpenAI-compatible frontend in this namespace" }}
{{- end }}
{{- if and (ne $v.ingress.mode "none") $v.ingress.tls.enabled (not $v.ingress.tls.secretName) }}
{{- fail "ingress.tls.enabled needs ingress.tls.secretName: the Secret holding the certificate (Istio: in the ingress gateway's namespace; Gateway API: in the release namespace)" }}
{{- end }}
{{- if and $v.ingress.tls.httpsRedirect (not $v.ingress.tls.enabled) }}
{{- fail "ingress.tls.httpsRedirect redirects to HTTPS, which is off: set ingress.tls.enabled=true and ingress.tls.secretName" }}
{{- end }}
{{- if and (eq $v.ingress.mode "gatewayApi") $v.ingress.tls.enabled (not $v.ingress.gatewayApi.createGateway) }}
{{- fail "ingress.tls configures listeners of the Gateway this chart creates; with an existing Gateway (createGateway=false), configure TLS on that Gateway and leave ingress.tls.enabled=false" }}
{{- end }}
{{- $np := $v.networkPolicy }}
{{- if and $np.enabled $np.ingressMode (ne $v.ingress.mode "none") (ne $np.ingressMode $v.ingress.mode) }}
{{- fail (printf "networkPolicy.ingressMode=%s admits another release's ingress, for a canary with no ingress of its own, but this release routes with ingress.mode=%s: leave networkPolicy.ingressMode empty" $np.ingressMode $v.ingress.mode) }}
{{- end }}
{{- $class := $v.ingress.gatewayApi.className }}
{{- if and $np.enabled (eq $v.ingress.mode "gatewayApi") $v.ingress.gatewayApi.createGateway (or (contains "regional" $class) (contains "rilb" $class)) (not $np.proxyOnlySubnet) }}
{{- fail (printf "ingress.gatewayApi.className=%s is a regional or internal load balancer whose proxies reach Triton from the region's proxy-only subnet, which the NetworkPolicy would block: set networkPolicy.proxyOnlySubnet to its range (gcloud compute networks subnets list --filter=purpose=REGIONAL_MANAGED_PROXY --format='value(region,ipCidrRange)')" $class) }}
{{- end }}
{{- if and (eq $v.ingress.mode "istio") (not $v.ingress.host) }}
{{- fail "ingress.mode=istio needs ingress.host: with no host the routes claim every host (*), and Istio serves only one of two Gateways whose hosts overlap on the same ingress gateway and port (IST0145 ConflictingGateways), so a second release would collide with this one; set ingress.host to a name of this release's own (and ingress.grpc.host if gRPC has its own)" }}
{{- end }}
{{- if and (eq $v.ingress.mode "istio") (or (hasPrefix "*" $v.ingress.host) (hasPrefix "*" $v.ingress.grpc.host)) }}
{{- fail "ingress.mode=istio matches this release's hosts exactly, and a wildcard host would overlap other releases' hosts on the same ingress gateway (IST0145 ConflictingGateways): name the host exactly; a shared Gateway (ingress.istio.createGateway=false, ingress.istio.existingGateway=NAMESPACE/NAME) may serve the wildcard itself" }}
{{- end }}
{{- if and (eq $v.ingress.mode "istio") (not $v.ingress.istio.createGateway) (not $v.ingress.istio.existingGateway) }}
{{- fail "ingress.mode=istio with createGateway=false needs ingress.istio.existingGateway (namespace/name)" }}
{{- end }}
{{- if and $v.ingress.canary.enabled (eq $v.ingress.mode "none") }}
{{- fail "ingress.canary splits traffic at the ingress: set ingress.mode to istio or gatewayApi, or ingress.canary.enabled=false" }}
{{- end }}
{{- if and $v.ingress.canary.enabled (not $v.ingress.canary.serviceName) }}
{{- fail "ingress.canary.enabled needs ingress.canary.serviceName: the Service of the second Triton release in this namespace" }}
{{- end }}
{{- if and $v.ingress.canary.enabled (eq $v.ingress.canary.serviceName (include "triton.fullname" .)) }}
{{- fail "ingress.canary.serviceName names this release's own Service: name the second release's Service" }}
{{- end }}
{{- if and $v.security.jwt.enabled (ne $v.ingress.mode "istio") }}
{{- fail "security.jwt is enforced by Istio sidecars: set ingress.mode=istio (with sidecar injection in the namespace), or security.jwt.enabled=false" }}
{{- end }}
{{- if and $v.security.jwt.enabled (not $v.security.jwt.issuer) }}
{{- fail "security.jwt.enabled needs security.jwt.issuer (the `iss` of accepted tokens)" }}
{{- end }}
{{- if and $v.security.iap.enabled (ne $v.ingress.mode "gatewayApi") }}
{{- fail "security.iap configures GKE's Gateway load balancer: set ingress.mode=gatewayApi, or security.iap.enabled=false" }}
{{- end }}
{{- if and $v.security.iap.enabled (or (not $v.security.iap.clientId) (not $v.security.iap.clientSecretName)) }}
{{- fail "security.iap.enabled needs security.iap.clientId and security.iap.clientSecretName (a Secret whose `key` holds the OAuth client secret)" }}
{{- end }}
{{- if and $v.modelLoading.gcsFuse.enabled $v.modelLoading.cache.enabled }}
{{- fail "modelLoading.gcsFuse and modelLoading.cache both replace Triton's download of modelRepository: enable one of them" }}
{{- end }}
{{- if and (or $v.modelLoading.gcsFuse.enabled $v.modelLoading.cache.enabled) (not (hasPrefix "gs://" $v.modelRepository)) }}
{{- fail (printf "modelLoading.gcsFuse and modelLoading.cache read a Cloud Storage repository, but modelRepository is %q: set it to gs://BUCKET/PATH, or turn them off to let Triton read it directly" $v.modelRepository) }}
{{- end }}
{{- if and $v.modelLoading.cache.enabled (eq $v.modelLoading.cache.volume.type "persistentVolumeClaim") (not $v.modelLoading.cache.volume.claimName) }}
{{- fail "modelLoading.cache.volume.type=persistentVolumeClaim needs modelLoading.cache.volume.claimName: the claim holding the copy" }}
{{- end }}
{{- range $v.server.extraArgs }}
{{- $flag := regexReplaceAll "=.*" . "" }}
{{- if has $flag (list "--model-repository" "--model-load-thread-count") }}
{{- fail (printf "server.extraArgs sets %s, which the chart writes itself: use modelRepository (and modelLoading) or modelLoading.threadCount instead" $flag) }}
{{- end }}
{{- end }}
{{- $reserved := list "dshm" "tmp" "model-cache" "model-repository" "gke-gcsfuse-cache" }}
{{- range $v.extraVolumes }}
{{- if hasKey . "hostPath" }}
{{- fail (printf "extraVolumes: %s is a hostPath volume, which Pod Security restricted forbids: use a Secret, ConfigMap, PersistentVolumeClaim, CSI or emptyDir volume" .name) }}
{{- end }}
{{- if has .name $reserved }}
{{- fail (printf "extraVolumes: the name %s is the chart's own volume: choose another name" .name) }}
{{- end }}
{{- end }}
{{- if and $v.standby.enabled (eq (int $v.gpu.count) 0) }}
{{- fail "standby keeps GPU nodes warm, but gpu.count is 0: set gpu.count, or standby.enabled=false" }}
{{- end }}
{{- end }}

{{/* The Service a route sends to, with weights: this release, and the canary when on.
Rendered as a YAML list of {name, weight}. */}}
{{- define "triton.backends" -}}
{{- $canary := ternary (int .Values.ingress.canary.weight) 0 .Values.ingress.canary.enabled }}
- name: {{ include "triton.fullname" . }}
  weight: {{ sub 100 $canary }}
{{- if .Values.ingress.canary.enabled }}
- name: {{ .Values.ingress.canary.serviceName }}
  weight: {{ $canary }}
{{- end }}
{{- end }}

{{/* The Istio Gateway the VirtualService binds to, as namespace/name. */}}
{{- define "triton.istioGateway" -}}
{{- if .Values.ingress.istio.createGateway }}
{{- printf "%s/%s" .Release.Namespace (include "triton.fullname" .) }}
{{- else }}
{{- .Values.ingress.istio.existingGateway }}
{{- end }}
{{- end }}

{{/* The HTTP requests the edge lets through, as {type, value, method, stream}: health, server
and model metadata, model readiness, and the inference endpoints of `paths` (infer, generate,
generate_stream). Everything else (model repository, shared memory, statistics, trace,
logging, model config) gets 404 at the edge. `stream` marks answers that stream (server-sent
events), which get the streaming timeout. With regexes, a model name is any path segment
except `stats` (GET /v2/models/stats is the statistics API), said without look-ahead, which
RE2 does not have. Without (Gateway API implementations such as GKE's that only match Exact and
PathPrefix), /v2/models/ is one prefix, streaming when generate_stream is allowed, and Triton's
restricted APIs guard the statistics, config and trace endpoints under it; methods are matched
only with regexes (method matching is an extended Gateway API feature too). Called with
(dict "regex" bool "paths" list). */}}
{{- define "triton.httpRoutes" -}}
{{- $get := ternary "GET" "" .regex }}
- {type: Exact, value: /v2/health/live, method: {{ $get | quote }}, stream: false}
- {type: Exact, value: /v2/health/ready, method: {{ $get | quote }}, stream: false}
- {type: Exact, value: /v2, method: {{ $get | quote }}, stream: false}
{{- if .regex }}
{{- $model := "/v2/models/([^/s][^/]*|s|s[^/t][^/]*|st|st[^/a][^/]*|sta|sta[^/t][^/]*|stat|stat[^/s][^/]*|stats[^/]+)(/versions/[0-9]+)?" }}
- {type: RegularExpression, value: {{ printf "%s(/ready)?" $model | quote }}, method: GET, stream: false}
{{- with without .paths "generate_stream" }}
- {type: RegularExpression, value: {{ printf "%s/(%s)" $model (join "|" .) | quote }}, method: POST, stream: false}
{{- end }}
{{- if has "generate_stream" .paths }}
- {type: RegularExpression, value: {{ printf "%s/generate_stream" $model | quote }}, method: POST, stream: true}
{{- end }}
{{- else }}
- {type: PathPrefix, value: /v2/models/, method: "", stream: {{ has "generate_stream" .paths }}}
{{- end }}
{{- end }}

{{/* The paths of Triton's OpenAI-compatible frontend the edge lets through, as {type, value,
method}: the model list and one model, completions and chat completions (either may stream).
Called with (dict "regex" bool): methods only with regexes, as in triton.httpRoutes. */}}
{{- define "triton.openaiRoutes" -}}
{{- $get := ternary "GET" "" .regex }}
{{- $post := ternary "POST" "" .regex }}
- {type: Exact, value: /v1/models, method: {{ $get | quote }}}
{{- if .regex }}
- {type: RegularExpression, value: "/v1/models/[^/]+", method: GET}
{{- else }}
- {type: PathPrefix, value: /v1/models/, method: ""}
{{- end }}
- {type: Exact, value: /v1/completions, method: {{ $post | quote }}}
- {type: Exact, value: /v1/chat/completions, method: {{ $post | quote }}}
{{- end }}

{{/* "true" when the routes attach to a GKE Gateway (a `gke-` class, or an existing Gateway,
assumed GKE unless gkeHealthCheck is turned off), whose backend service has a timeout of its
own (30 s unless a GCPBackendPolicy says otherwise). */}}
{{- define "triton.gkeGateway" -}}
{{- $gw := .Values.ingress.gatewayApi }}
{{- if and (eq .Values.ingress.mode "gatewayApi") (ternary (hasPrefix "gke-" $gw.className) $gw.gkeHealthCheck $gw.createGateway) }}true{{ end }}
{{- end }}

{{/* Seconds of ingress.streaming.timeout (written `<N>s`). */}}
{{- define "triton.streamingTimeoutSeconds" -}}
{{- trimSuffix "s" .Values.ingress.streaming.timeout | int }}
{{- end }}

{{/* The gRPC methods of inference.GRPCInferenceService the edge lets through: the
counterparts of triton.httpRoutes (no repository, shared-memory, statistics, trace or log
methods, no ModelConfig). */}}
{{- define "triton.grpcMethods" -}}
- ServerLive
- ServerReady
- ServerMetadata
- ModelReady
- ModelMetadata
- ModelInfer
- ModelStreamInfer
{{- end }}

{{/* parentRefs of a Gateway API route: listeners of the Gateway this chart creates, or the
existing Gateway named in values. Called with (dict "root" $ "listeners" (list ...)). */}}
{{- define "triton.parentRefs" -}}
{{- if .root.Values.ingress.gatewayApi.createGateway }}
{{- range .listeners }}
- name: {{ include "triton.fullname" $.root }}
  sectionName: {{ . }}
{{- end }}
{{- else }}
{{- $ref := .root.Values.ingress.gatewayApi.parentRef }}
- name: {{ $ref.name }}
  {{- with $ref.namespace }}
  namespace: {{ . }}
  {{- end }}
  {{- with $ref.sectionName }}
  sectionName: {{ . }}
  {{- end }}
{{- end }}
{{- end }}

{{/* The environment variable that carries the restricted-API key into Triton's arguments. */}}
{{- define "triton.adminKeyEnv" -}}
TRITON_ADMIN_KEY
{{- end }}

{{/* Labels of the `helm test` pod: a name of its own, so that no Service, PodDisruptionBudget
or NetworkPolicy of the release selects it. */}}
{{- define "triton.testLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "triton.name" . | trunc 58 | trimSuffix "-" }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}
