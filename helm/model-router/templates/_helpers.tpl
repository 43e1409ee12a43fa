{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "model-router.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: <release>-<chart>, or just <release> when it already contains the chart
name. Truncated to 63 characters; Kimi resources append "-kimi", so keep release names short.
*/}}
{{- define "model-router.fullname" -}}
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

{{- define "model-router.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "model-router.labels" -}}
helm.sh/chart: {{ include "model-router.chart" . }}
{{ include "model-router.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: model-router
{{- end }}

{{/*
Labels shared by every pod of the release. Each workload adds app.kubernetes.io/component
(gateway | kimi) to its selector, so the gateway never selects the Kimi pool or the test pod.
*/}}
{{- define "model-router.selectorLabels" -}}
app.kubernetes.io/name: {{ include "model-router.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "model-router.gateway.selectorLabels" -}}
{{ include "model-router.selectorLabels" . }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "model-router.kimi.fullname" -}}
{{- printf "%s-kimi" (include "model-router.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "model-router.kimi.selectorLabels" -}}
{{ include "model-router.selectorLabels" . }}
app.kubernetes.io/component: kimi
{{- end }}

{{- define "model-router.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "model-router.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "model-router.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Where the policy ConfigMap is mounted (a directory, so kubelet's atomic swap reaches the pod). */}}
{{- define "model-router.policyDir" -}}/etc/model-router/policy{{- end }}
{{- define "model-router.clientKeysDir" -}}/etc/model-router/client-keys{{- end }}
{{- define "model-router.tenantsDir" -}}/etc/model-router/tenants{{- end }}

{{- define "model-router.redis.fullname" -}}
{{- printf "%s-redis" (include "model-router.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "model-router.redis.selectorLabels" -}}
{{ include "model-router.selectorLabels" . }}
app.kubernetes.io/component: redis
{{- end }}

{{/* The shared-state URL: redis.url, else the chart's Redis when enabled, else empty (in-process). */}}
{{- define "model-router.redis.url" -}}
{{- if .Values.redis.url }}{{ .Values.redis.url }}
{{- else if .Values.redis.enabled }}{{ printf "redis://%s:6379/0" (include "model-router.redis.fullname" .) }}
{{- end }}
{{- end }}

{{/* "true" when the gateway should run its simulated upstreams. */}}
{{- define "model-router.demo" -}}
{{- $demo := .Values.config.demo }}
{{- if eq (toString $demo) "auto" }}
{{- not (or .Values.providers.existingSecret .Values.kimi.enabled .Values.providers.kimi.apiBase) }}
{{- else }}
{{- $demo }}
{{- end }}
{{- end }}

{{/* The Kimi endpoint the gateway uses: the in-cluster pool when enabled, else providers.kimi. */}}
{{- define "model-router.kimi.apiBase" -}}
{{- if .Values.kimi.enabled }}
{{- printf "http://%s:%d/v1" (include "model-router.kimi.fullname" .) (int .Values.kimi.service.port) }}
{{- else }}
{{- .Values.providers.kimi.apiBase }}
{{- end }}
{{- end }}

{{- define "model-router.kimi.metricsUrl" -}}
{{- if .Values.kimi.enabled }}
{{- printf "http://%s:%d/metrics" (include "model-router.kimi.fullname" .) (int .Values.kimi.service.port) }}
{{- else }}
{{- .Values.providers.kimi.metricsUrl }}
{{- end }}
{{- end }}

{{/*
The Secret holding the Kimi key: for the in-cluster pool, kimi.apiKeySecret (empty: the pool runs
without a key, which the policy allows with requires_key: false); for an external endpoint,
providers.existingSecret.
*/}}
{{- define "model-router.kimi.keySecretName" -}}
{{- if .Values.kimi.enabled }}
{{- .Values.kimi.apiKeySecret.name }}
{{- else }}
{{- .Values.providers.existingSecret }}
{{- end }}
{{- end }}

{{- define "model-router.kimi.keySecretKey" -}}
{{- if .Values.kimi.enabled }}
{{- .Values.kimi.apiKeySecret.key }}
{{- else }}
{{- .Values.providers.secretKeys.kimi }}
{{- end }}
{{- end }}
