{{/* The chart name, overridable: the base of the `app.kubernetes.io/name` label. */}}
{{- define "triton.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object names: unique per release, at most 63 characters (DNS label). */}}
{{- define "triton.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
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

{{/* The tritonserver arguments, one per line, all written `--flag=value`. */}}
{{- define "triton.args" -}}
{{- if not .Values.modelRepository }}
{{- fail "modelRepository is required: set it to the Triton model repository, e.g. --set modelRepository=gs://BUCKET/PATH" }}
{{- end -}}
- --model-repository={{ .Values.modelRepository }}
- --model-control-mode={{ .Values.server.modelControlMode }}
- --disable-auto-complete-config
- --log-verbose={{ .Values.server.logVerbose }}
{{- range .Values.server.extraArgs }}
- {{ . }}
{{- end }}
{{- end }}
