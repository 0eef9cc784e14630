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

{{/* The ServiceAccount Triton runs as: the created one, or an existing one named (that a
name is given is checked in _validate.tpl). */}}
{{- define "triton.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "triton.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- .Values.serviceAccount.name }}
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

{{/* The NGC release (`YY.MM`) of Triton's image: image.release, else the release this chart
version ships (Chart.yaml's ngcRelease). What depends on the release reads it here, never the
shape of a tag: a republished copy (Marketplace's `PREFIX:0.1.0`) says nothing about it (that
Chart.yaml names one is checked in _validate.tpl). */}}
{{- define "triton.release" -}}
{{- default (index .Chart.Annotations "ngcRelease") .Values.image.release }}
{{- end }}

{{/* Triton's image: image.* with the tag defaulted to `<release>-<flavor>`. */}}
{{- define "triton.serverImage" -}}
{{- $tag := default (printf "%s-%s" (include "triton.release" .) .Values.image.flavor) .Values.image.tag }}
{{- include "triton.imageRef" (merge (dict "tag" $tag) (omit .Values.image "tag")) }}
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

{{/* Every node selector term of the Triton pods: the GPU's, the node pool's Local SSD for the
FUSE file cache, then nodeSelector. The warm-standby placeholders take the same, so that they
keep warm only nodes a Triton pod can use, whatever feature adds a term. */}}
{{- define "triton.nodeSelector" -}}
{{- $selector := merge (include "triton.gpuNodeSelector" . | fromYaml) .Values.nodeSelector }}
{{- $fuse := .Values.modelLoading.gcsFuse }}
{{- if and $fuse.enabled (eq $fuse.fileCache "localSsd") }}
{{- $_ := set $selector "cloud.google.com/gke-ephemeral-storage-local-ssd" "true" }}
{{- end }}
{{- with $selector }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/* The tolerations of the Triton pods (and of the placeholders, see triton.nodeSelector): GKE's
`nvidia.com/gpu` taint on GPU nodes, then tolerations. */}}
{{- define "triton.tolerations" -}}
{{- if gt (int .Values.gpu.count) 0 }}
- key: nvidia.com/gpu
  operator: Exists
  effect: NoSchedule
{{- end }}
{{- with .Values.tolerations }}
{{ toYaml . }}
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
{{- if eq .Values.autoscaling.engine "keda" }}
- {group: keda.sh/v1alpha1, kind: ScaledObject}
- {group: keda.sh/v1alpha1, kind: TriggerAuthentication}
{{- else }}
- {group: autoscaling/v2, kind: HorizontalPodAutoscaler}
{{- end }}
{{- if eq .Values.autoscaling.engine "gkePodMetrics" }}
- {group: autoscaling.gke.io/v1beta1, kind: AutoscalingMetric}
{{- end }}
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

{{/* The release's own name under ingress.hostSuffix, `<release>.<namespace>.<suffix>`: unique
to the release in the cluster (empty without a suffix). */}}
{{- define "triton.ownHost" -}}
{{- with .Values.ingress.hostSuffix }}
{{- printf "%s.%s.%s" $.Release.Name $.Release.Namespace . }}
{{- end }}
{{- end }}

{{/* The HTTP host the edge routes: ingress.host; with istio and none given, the release's own
(triton.ownHost). Empty: any host (gatewayApi). */}}
{{- define "triton.ingressHost" -}}
{{- if .Values.ingress.host }}
{{- .Values.ingress.host }}
{{- else if eq .Values.ingress.mode "istio" }}
{{- include "triton.ownHost" . }}
{{- end }}
{{- end }}

{{/* The gRPC host: ingress.grpc.host; with gatewayApi and none given, `grpc.` and the release's
own name (a GRPCRoute may not share the HTTPRoute's hostname). Empty with istio: the HTTP host. */}}
{{- define "triton.grpcHost" -}}
{{- if .Values.ingress.grpc.host }}
{{- .Values.ingress.grpc.host }}
{{- else if and (eq .Values.ingress.mode "gatewayApi") .Values.ingress.hostSuffix }}
{{- printf "grpc.%s" (include "triton.ownHost" .) }}
{{- end }}
{{- end }}

{{/* Shell lines that set INGRESS_HOST and INGRESS_PORT to where clients reach this release's
HTTP port: the ingress gateway's (istio) or the Gateway's (gatewayApi) address, the Service's
load balancer, or a port-forward. NOTES and the Application's notes print them. */}}
{{- define "triton.addressCommands" -}}
{{- $name := include "triton.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- if eq .Values.ingress.mode "istio" }}
{{- with .Values.ingress.istio }}
export INGRESS_HOST=$(kubectl -n {{ .gatewayNamespace }} get service {{ .gatewayService }} -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
export INGRESS_PORT=$(kubectl -n {{ .gatewayNamespace }} get service {{ .gatewayService }} -o jsonpath='{.spec.ports[?(@.name=="http2")].port}')
{{- end }}
{{- else if eq .Values.ingress.mode "gatewayApi" }}
{{- $gw := .Values.ingress.gatewayApi }}
{{- $gateway := ternary $name $gw.parentRef.name $gw.createGateway }}
{{- $gatewayNs := ternary $ns (default $ns $gw.parentRef.namespace) $gw.createGateway }}
kubectl -n {{ $gatewayNs }} wait gateway/{{ $gateway }} --for=condition=Programmed --timeout=15m
export INGRESS_HOST=$(kubectl -n {{ $gatewayNs }} get gateway {{ $gateway }} -o jsonpath='{.status.addresses[0].value}')
export INGRESS_PORT={{ $gw.httpPort }}
{{- else if eq .Values.service.type "LoadBalancer" }}
export INGRESS_HOST=$(kubectl -n {{ $ns }} get service {{ $name }} -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
export INGRESS_PORT=8000
{{- else }}
kubectl -n {{ $ns }} port-forward service/{{ $name }} 8000:8000 8001:8001 &
export INGRESS_HOST=127.0.0.1 INGRESS_PORT=8000
{{- end }}
{{- end }}

{{/* What a user does for names the chart made under ingress.hostSuffix (triton.ownHost): the
DNS record to add, and the request to send meanwhile; empty when every host was given. NOTES
print it, the Application's notes too. */}}
{{- define "triton.ownHostNotes" -}}
{{- $own := list }}
{{- if and (eq .Values.ingress.mode "istio") (not .Values.ingress.host) }}
{{- $own = append $own (include "triton.ingressHost" .) }}
{{- end }}
{{- if and (eq .Values.ingress.mode "gatewayApi") .Values.ingress.grpc.enabled (not .Values.ingress.grpc.host) }}
{{- $own = append $own (include "triton.grpcHost" .) }}
{{- end }}
{{- if and $own .Values.ingress.hostSuffix }}
{{- $suffix := .Values.ingress.hostSuffix -}}
This release's own {{ ternary "name is" "names are" (eq (len $own) 1) }} {{ join ", " $own }}, under ingress.hostSuffix {{ $suffix }}.
Clients find {{ ternary "it" "them" (eq (len $own) 1) }} once a DNS zone you control for {{ $suffix }} (a Cloud DNS private
zone for clients in the VPC, or a public zone of your domain set as ingress.hostSuffix) holds
an A record of {{ ternary "it" "each" (eq (len $own) 1) }} at $INGRESS_HOST, for example:
{{ range $own }}
  gcloud dns record-sets create {{ . }}. --zone=ZONE --type=A --ttl=300 --rrdatas="$INGRESS_HOST"
{{- end }}
{{- if eq .Values.ingress.mode "istio" }}

Until then, send the name as the Host header:

  curl -sf -H "Host: {{ include "triton.ingressHost" . }}" http://${INGRESS_HOST}:${INGRESS_PORT}/v2/health/ready && echo ready
{{- end }}
{{- end }}
{{- end }}

{{/* The Application's info (name and value pairs GKE's console shows): where Triton answers,
and each choice that needs something of the cluster or of the user, with how to check it or
what to do. It says why a deploy turned a value on or off (a queue metric's scraping, gRPC
without TLS on GKE's load balancers) from the values themselves, so a helm install with the
same values reads the same. */}}
{{- define "triton.applicationInfo" -}}
{{- $name := include "triton.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- $ing := .Values.ingress }}
{{- $inCluster := printf "%s.%s.svc" $name $ns }}
- name: Triton in the cluster
  value: {{ printf "HTTP %s:8000, gRPC %s:8001, metrics :8002 of the pods" $inCluster $inCluster | quote }}
{{- if ne $ing.mode "none" }}
{{- $host := include "triton.ingressHost" . }}
{{- $via := ternary "the Istio ingress gateway" "the Gateway" (eq $ing.mode "istio") }}
- name: Ingress host (HTTP)
  {{- if not $host }}
  value: {{ printf "any: requests to %s's address reach Triton" $via | quote }}
  {{- else if $ing.host }}
  value: {{ $host | quote }}
  {{- else }}
  value: {{ printf "%s, this release's own name under ingress.hostSuffix %s: add a DNS record of it at %s's address (the notes show how); until then send it as the Host header: curl -H 'Host: %s' http://ADDRESS/v2/health/ready" $host $ing.hostSuffix $via $host | quote }}
  {{- end }}
- name: gRPC at the edge
  {{- $httpsPort := ternary $ing.istio.httpsPort $ing.gatewayApi.httpsPort (eq $ing.mode "istio") }}
  {{- $tls := ternary (printf ", over TLS on port %d (certificate Secret %s, which must name it)" (int $httpsPort) $ing.tls.secretName) "" $ing.tls.enabled }}
  {{- if $ing.grpc.enabled }}
  value: {{ printf "%s%s" (default $host (include "triton.grpcHost" .)) $tls | default (printf "any host%s" $tls) | quote }}
  {{- else if and (eq $ing.mode "gatewayApi") (not $ing.tls.enabled) }}
  value: {{ printf "off: GKE's load balancers speak gRPC to clients over TLS only, and no TLS certificate Secret was given (ingress.tls.secretName); deploy again with one to route gRPC. In the cluster, gRPC answers at %s:8001" $inCluster | quote }}
  {{- else }}
  value: {{ printf "off (ingress.grpc.enabled); in the cluster, gRPC answers at %s:8001" $inCluster | quote }}
  {{- end }}
{{- end }}
{{- with .Values.autoscaling }}
{{- if .enabled }}
{{- $api := ternary "v1beta1.external.metrics.k8s.io" "v1beta1.custom.metrics.k8s.io" (eq .metric "gpuDutyCycle") }}
{{- $shown := printf "kubectl -n %s describe hpa %s shows the metric's current value (not <unknown>)" $ns $name }}
- name: Autoscaling
  {{- if eq .engine "gkePodMetrics" }}
  value: {{ printf "%s, %d to %d pods, read by GKE from the pods (AutoscalingMetric %s). Needs GKE 1.37.0-gke.3100000 or later (1.36.4-gke.1247000 in preview) with the HPA performance profile: %s" .metric (int .minReplicas) (int .maxReplicas) $name $shown | quote }}
  {{- else if eq .engine "keda" }}
  value: {{ printf "%s, %d to %d pods, by KEDA (ScaledObject %s). Needs KEDA in the cluster: kubectl -n %s get scaledobject %s shows READY True" .metric (int .minReplicas) (int .maxReplicas) $name $ns $name | quote }}
  {{- else }}
  value: {{ printf "%s, %d to %d pods. Needs the Custom Metrics Stackdriver Adapter in the cluster: kubectl get apiservice %s shows AVAILABLE True, and %s" .metric (int .minReplicas) (int .maxReplicas) $api $shown | quote }}
  {{- end }}
{{- end }}
{{- end }}
{{- if .Values.metrics.podMonitoring.enabled }}
{{- $as := .Values.autoscaling }}
{{- $reads := ternary (printf "; autoscaling on %s reads them through it" $as.metric) "" (and $as.enabled (ne $as.metric "gpuDutyCycle") (ne $as.engine "gkePodMetrics")) }}
- name: Metrics
  value: {{ printf "Managed Prometheus scrapes Triton's metrics (PodMonitoring %s)%s. Managed collection must be on in the cluster: kubectl -n gmp-system get pods lists its collectors" $name $reads | quote }}
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
method}: inference only, the model list, completions, chat completions (either may stream) and
embeddings. The frontend's model management (`POST /v1/models/{name}/load` and `/unload`) and
its metrics never pass. With regexes one model's description (`GET /v1/models/{name}`, a single
path segment) passes too; without them (Gateway API implementations such as GKE's, Exact and
PathPrefix only) it does not, since a `/v1/models/` prefix would pass load and unload. Called
with (dict "regex" bool): methods only with regexes, as in triton.httpRoutes. */}}
{{- define "triton.openaiRoutes" -}}
{{- $get := ternary "GET" "" .regex }}
{{- $post := ternary "POST" "" .regex }}
- {type: Exact, value: /v1/models, method: {{ $get | quote }}}
{{- if .regex }}
- {type: RegularExpression, value: "/v1/models/[^/]+", method: GET}
{{- end }}
- {type: Exact, value: /v1/completions, method: {{ $post | quote }}}
- {type: Exact, value: /v1/chat/completions, method: {{ $post | quote }}}
- {type: Exact, value: /v1/embeddings, method: {{ $post | quote }}}
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

{{/* Non-empty when Triton gets `--http-max-input-size`: a limit is set and the image's release
(triton.release) knows the flag (NGC 25.06, Triton 2.59, and later). An older Triton refuses
to start on a flag it does not know. */}}
{{- define "triton.maxInputSizeFlag" -}}
{{- if gt (int64 .Values.requestLimits.maxBodyBytes) 0 }}
{{- if ge (include "triton.release" . | replace "." "" | atoi) 2506 }}true{{ end }}
{{- end }}
{{- end }}

{{/* The name of the gauge this release's AutoscalingMetric exposes to the HPA (GKE takes
lowercase letters, digits and '-'). */}}
{{- define "triton.gkeGaugeName" -}}
pending-requests
{{- end }}

{{/* The autoscaling metric's target per pod, as a number. */}}
{{- define "triton.autoscalingTarget" -}}
{{- $as := .Values.autoscaling }}
{{- if eq $as.metric "queueTime" }}{{ $as.queueTime.targetMicrosecondsPerSecond }}
{{- else if eq $as.metric "pendingRequests" }}{{ $as.pendingRequests.target }}
{{- else }}{{ $as.gpuDutyCycle.target }}{{ end }}
{{- end }}

{{/* KEDA's PromQL: the metric summed over this release's pods, against the target per pod.
Triton's metrics carry Managed Prometheus's labels: `namespace` and `job` (the PodMonitoring's
name). GKE's duty cycle carries its resource labels; the pod name pattern is this
Deployment's (<name>-<template hash>-<suffix>), which no other Deployment's pods match. */}}
{{- define "triton.kedaQuery" -}}
{{- $as := .Values.autoscaling }}
{{- $clusterName := include "triton.clusterName" . }}
{{- $name := include "triton.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- if eq $as.metric "gpuDutyCycle" }}
{{- $cluster := ternary (printf ",cluster_name=%q" $clusterName) "" (ne $clusterName "") }}
{{- printf "sum(kubernetes_io:container_accelerator_duty_cycle{monitored_resource=\"k8s_container\",namespace_name=%q,container_name=\"triton\",pod_name=~%q%s})" $ns (printf "%s-[a-z0-9]+-[a-z0-9]+" $name) $cluster }}
{{- else }}
{{- $cluster := ternary (printf ",cluster=%q" $clusterName) "" (ne $clusterName "") }}
{{- $selector := printf "{namespace=%q,job=%q%s}" $ns $name $cluster }}
{{- if eq $as.metric "queueTime" }}
{{- printf "sum(rate(nv_inference_queue_duration_us%s[%s]))" $selector $as.keda.rateWindow }}
{{- else }}
{{- printf "sum(nv_inference_pending_request_count%s)" $selector }}
{{- end }}
{{- end }}
{{- end }}

{{/* A duration such as 15s, 1m or 1m30s, in seconds (for checks between durations). */}}
{{- define "triton.seconds" -}}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9.]+(ms|s|m|h)" . -1 }}
{{- $n := float64 (regexFind "^[0-9.]+" .) }}
{{- $unit := regexFind "(ms|s|m|h)$" . }}
{{- $total = addf $total (mulf $n (get (dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0) $unit)) }}
{{- end }}
{{- $total }}
{{- end }}

{{/* The GKE cluster name metrics read from Cloud Monitoring are narrowed to:
autoscaling.clusterName, or its name before 0.2.0 (autoscaling.gpuDutyCycle.clusterName), so a
values file written for 0.1.0 upgrades unchanged. */}}
{{- define "triton.clusterName" -}}
{{- .Values.autoscaling.clusterName | default .Values.autoscaling.gpuDutyCycle.clusterName }}
{{- end }}
