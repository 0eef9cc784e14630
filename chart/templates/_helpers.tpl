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

{{/* The chart and its version, as `helm.sh/chart` (on every object, the test pod's too). */}}
{{- define "triton.chartLabel" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object; versions live here, never in selectors. */}}
{{- define "triton.labels" -}}
{{ include "triton.chartLabel" . }}
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
(the local runner in demo/local.py replaces flags by name). */}}
{{- define "triton.args" -}}
- {{ printf "--model-repository=%s" (include "triton.modelRepositoryPath" . | include "triton.literal") | quote }}
- --model-control-mode={{ .Values.server.modelControlMode }}
- --model-load-thread-count={{ .Values.modelLoading.threadCount }}
{{- if .Values.server.disableAutoCompleteConfig }}
- --disable-auto-complete-config
{{- end }}
- --log-verbose={{ .Values.server.logVerbose }}
- --allow-gpu-metrics={{ and .Values.server.allowGpuMetrics (gt (int .Values.gpu.count) 0) }}
{{- range $key, $value := .Values.server.metricsConfig }}
- {{ printf "--metrics-config=%s=%s" $key (toString $value) | include "triton.literal" | quote }}
{{- end }}
- --exit-timeout-secs={{ .Values.server.exitTimeoutSeconds }}
{{- if include "triton.maxInputSizeFlag" . }}
- --http-max-input-size={{ int64 .Values.requestLimits.maxBodyBytes }}
{{- end }}
{{- with .Values.security.restrictedApi }}
{{- if .enabled }}
{{- /* $(TRITON_ADMIN_KEY) is expanded by the kubelet from the Secret-backed variable. */}}
{{- $rule := printf "%s:%s=$(%s)" (join "," .apis) .header (include "triton.adminKeyEnv" $) }}
- --http-restricted-api={{ $rule }}
- --grpc-restricted-protocol={{ $rule }}
{{- end }}
{{- end }}
{{- range .Values.server.extraArgs }}
- {{ include "triton.literal" . | quote }}
{{- end }}
{{- end }}

{{/* A user's value written into a container's command, args or env: every `$` doubled, so
that the kubelet's $(VAR) expansion gives back the value as written and never a variable
such as the admin key. (Escaping only `$(` would not do: the kubelet reads `$$` as `$`, so a
value holding `$$(VAR)` would turn back into a reference.) Only the chart's own references,
such as $(TRITON_ADMIN_KEY) in the restricted-API rule, are written without it. */}}
{{- define "triton.literal" -}}
{{- toString . | replace "$" "$$" }}
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
mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY" && {{ include "triton.literal" .Values.gpu.mps.controlPath }} -d || { echo "gpu.mps.enabled: could not start the MPS control daemon ({{ include "triton.literal" .Values.gpu.mps.controlPath }} -d): set gpu.mps.controlPath to nvidia-cuda-mps-control in this image, or disable gpu.mps" >&2; exit 1; }; exec tritonserver "$@"
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
{{- if .Values.requestLimits.istioEnvoyFilter }}
- {group: networking.istio.io/v1alpha3, kind: EnvoyFilter}
{{- end }}
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

{{/* Every Service the edge routes send to, each with the policies' name suffix and where its
readiness answers: this release's and the canary's Triton, and the OpenAI-compatible frontend
when routed, unless ingress.openai.gkePolicies is off (a process of its own: `/health/ready`
on its port). Rendered as a YAML list of
{name, suffix, port, path}. */}}
{{- define "triton.gkeBackends" -}}
{{- range $i, $backend := include "triton.backends" . | fromYamlArray }}
- name: {{ $backend.name }}
  suffix: {{ ternary "-canary" "" (gt $i 0) | quote }}
  port: 8000
  path: /v2/health/ready
{{- end }}
{{- if and .Values.ingress.openai.enabled .Values.ingress.openai.gkePolicies }}
- name: {{ .Values.ingress.openai.serviceName }}
  suffix: "-openai"
  port: {{ .Values.ingress.openai.port }}
  path: /health/ready
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
{{ include "triton.chartLabel" . }}
app.kubernetes.io/name: {{ include "triton.name" . | trunc 58 | trimSuffix "-" }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Non-empty when Triton gets `--http-max-input-size`: a limit is set and the image knows the
flag (NGC 25.06, Triton 2.59, and later; a tag that is no `YY.MM` release is taken as new
enough). An older Triton refuses to start on a flag it does not know. */}}
{{- define "triton.maxInputSizeFlag" -}}
{{- if gt (int64 .Values.requestLimits.maxBodyBytes) 0 }}
{{- $release := regexFind "^[0-9]+[.][0-9]+" .Values.image.tag }}
{{- if or (not $release) (ge (float64 $release) 25.06) }}true{{ end }}
{{- end }}
{{- end }}
