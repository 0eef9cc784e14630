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
{{- int .Values.replicaCount }}
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
- --model-repository={{ .Values.modelRepository }}
- --model-control-mode={{ .Values.server.modelControlMode }}
{{- if .Values.server.disableAutoCompleteConfig }}
- --disable-auto-complete-config
{{- end }}
- --log-verbose={{ .Values.server.logVerbose }}
- --allow-gpu-metrics={{ and .Values.server.allowGpuMetrics (gt (int .Values.gpu.count) 0) }}
{{- range $key, $value := .Values.server.metricsConfig }}
- --metrics-config={{ $key }}={{ $value }}
{{- end }}
- --exit-timeout-secs={{ .Values.server.exitTimeoutSeconds }}
{{- range .Values.server.extraArgs }}
- {{ . }}
{{- end }}
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
{{- end }}
