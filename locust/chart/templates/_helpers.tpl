{{/* Object names: `<release>-triton-locust` (or the override), cut so suffixes fit 63. */}}
{{- define "locust.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" }}
{{- else if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 45 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "locust.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component (master or worker). Called with (dict "root" $ "component" "master"). */}}
{{- define "locust.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The image reference: a digest pins it. */}}
{{- define "locust.image" -}}
{{- $i := .Values.image }}
{{- $prefix := ternary (printf "%s/" $i.registry) "" (ne (default "" $i.registry) "") }}
{{- if $i.digest }}{{ printf "%s%s@%s" $prefix $i.repository $i.digest }}{{ else }}{{ printf "%s%s:%s" $prefix $i.repository $i.tag }}{{ end }}
{{- end }}

{{/* The base URL the load goes to: the Triton release's Service in the cluster, or a URL. */}}
{{- define "locust.targetUrl" -}}
{{- $t := .Values.target }}
{{- if and $t.service $t.url }}
{{- fail "target.service and target.url are both set: choose the Triton Service (in-cluster) or a URL (the ingress), not both" }}
{{- else if $t.service }}
{{- printf "http://%s.%s.svc:%d" $t.service (default .Release.Namespace $t.namespace) (int $t.port) }}
{{- else if $t.url }}
{{- $t.url | trimSuffix "/" }}
{{- else }}
{{- fail "set target.service to the Triton release's Service (e.g. --set target.service=triton-triton-inference-server), or target.url to the ingress (http://HOST:PORT)" }}
{{- end }}
{{- end }}

{{/* Where the bundle is mounted: the repository's layout, so the locustfile finds its
modules and samples/bert/contract.py as it does in a clone. */}}
{{- define "locust.bundleDir" -}}
/mnt/bundle
{{- end }}

{{/* Seconds a Job may run: the longest wait for workers and for Triton, the run (or the
interactive session), the users' stop and the report hold, plus a minute. */}}
{{- define "locust.deadlineSeconds" -}}
{{- $r := .Values.run }}
{{- $run := ternary (int $r.durationSeconds) (int $r.interactiveSeconds) $r.headless }}
{{- $hold := ternary (int $r.reportHoldSeconds) 0 $r.headless }}
{{- add (int $r.expectWorkersSeconds) (int $r.readyTimeoutSeconds) $run (int $r.stopTimeoutSeconds) $hold 60 }}
{{- end }}

{{/* What every pod shares: security, placement, the bundle and a writable /tmp. */}}
{{- define "locust.podCommon" -}}
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.hostAliases }}
hostAliases:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: bundle
    configMap:
      name: {{ include "locust.fullname" . }}
      items:
        {{- range $path, $_ := .Files.Glob "files/**" }}
        {{- $relative := trimPrefix "files/" $path }}
        - key: {{ $relative | replace "/" "." }}
          path: {{ $relative }}
        {{- end }}
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
  {{- with .Values.target.tls }}
  {{- if .caSecret }}
  - name: ca
    secret:
      secretName: {{ .caSecret }}
      items:
        - key: {{ .caKey }}
          path: ca.crt
  {{- else if .caConfigMap }}
  - name: ca
    configMap:
      name: {{ .caConfigMap }}
      items:
        - key: {{ .caKey }}
          path: ca.crt
  {{- end }}
  {{- end }}
{{- end }}

{{/* The CA's mount, in every Locust container (workers are handed the master's --ca-file). */}}
{{- define "locust.caMount" -}}
{{- with include "locust.caFile" . }}
- name: ca
  mountPath: {{ dir . }}
  readOnly: true
{{- end }}
{{- end }}

{{/* The container settings every Locust container shares. */}}
{{- define "locust.containerCommon" -}}
image: {{ include "locust.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
env:
  - name: HOME
    value: /tmp
  - name: PYTHONDONTWRITEBYTECODE
    value: "1"
workingDir: {{ include "locust.bundleDir" . }}
{{- end }}

{{/* The locustfile's path in the container. */}}
{{- define "locust.locustfile" -}}
{{ include "locust.bundleDir" . }}/locust/locustfile-bert-large.py
{{- end }}

{{/* Every render-time check of the target's TLS settings, in one place (master.yaml includes
it first): each refusal says what is wrong and what to set instead. */}}
{{- define "locust.validate" -}}
{{- $t := .Values.target }}
{{- if and $t.tls.caSecret $t.tls.caConfigMap }}
{{- fail "target.tls.caSecret and target.tls.caConfigMap are both set: the CA comes from one of them" }}
{{- end }}
{{- $ca := or $t.tls.caSecret $t.tls.caConfigMap }}
{{- if and (or $ca $t.tls.insecure) (not (hasPrefix "https://" (include "locust.targetUrl" .))) }}
{{- fail "target.tls applies to an https target.url (TLS at the ingress); the target is plain HTTP: set target.url=https://HOST[:PORT], or leave target.tls unset" }}
{{- end }}
{{- if and $ca $t.tls.insecure }}
{{- fail "target.tls.insecure skips the check the CA is given for: keep the CA (target.tls.caSecret or caConfigMap) and set insecure=false, or drop the CA" }}
{{- end }}
{{- end }}

{{/* Where the CA bundle is mounted in every pod; empty when none is given. */}}
{{- define "locust.caFile" -}}
{{- if or .Values.target.tls.caSecret .Values.target.tls.caConfigMap }}/etc/locust-ca/ca.crt{{ end }}
{{- end }}
