{{/*
The gateway's environment. Provider keys only ever come from secretKeyRef of an existing Secret
(optional: a missing key leaves that backend disabled); no value in values.yaml can hold a key.
*/}}
{{- define "model-router.gateway.env" -}}
- name: ROUTER_POLICY_FILE
  value: {{ printf "%s/policy.yaml" (include "model-router.policyDir" .) | quote }}
- name: ROUTER_POLICY_RELOAD_INTERVAL_S
  value: {{ .Values.config.policyReloadIntervalSeconds | quote }}
- name: ROUTER_LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: ROUTER_MAX_BODY_BYTES
  value: {{ .Values.config.maxBodyBytes | int64 | quote }}
- name: ROUTER_DEMO
  value: {{ include "model-router.demo" . | quote }}
# The gateway drains within the pod's grace period: the preStop sleep (5 s) and a margin come off it.
- name: ROUTER_SHUTDOWN_GRACE_S
  value: {{ max 1 (sub (int .Values.terminationGracePeriodSeconds) 10) | quote }}
{{- if .Values.clientKeys.enabled }}
- name: ROUTER_CLIENT_KEYS_FILE
  value: {{ printf "%s/keys" (include "model-router.clientKeysDir" .) | quote }}
{{- end }}
{{- with include "model-router.kimi.apiBase" . }}
- name: KIMI_API_BASE
  value: {{ . | quote }}
{{- end }}
{{- with include "model-router.kimi.metricsUrl" . }}
- name: KIMI_METRICS_URL
  value: {{ . | quote }}
{{- end }}
- name: KIMI_MODEL
  value: {{ ternary .Values.kimi.servedModelName .Values.providers.kimi.model .Values.kimi.enabled | quote }}
{{- with ternary "vllm" .Values.providers.kimi.flavour .Values.kimi.enabled }}
- name: KIMI_FLAVOUR
  value: {{ . | quote }}
{{- end }}
{{- with include "model-router.kimi.keySecretName" . }}
- name: KIMI_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ include "model-router.kimi.keySecretKey" $ }}
      optional: true
{{- end }}
{{- with .Values.providers.existingSecret }}
- name: OPENAI_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.providers.secretKeys.openai }}
      optional: true
- name: ANTHROPIC_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.providers.secretKeys.anthropic }}
      optional: true
- name: MOONSHOT_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.providers.secretKeys.moonshot }}
      optional: true
{{- end }}
{{- with .Values.providers.openai.apiBase }}
- name: OPENAI_API_BASE
  value: {{ . | quote }}
{{- end }}
{{- with .Values.providers.anthropic.apiBase }}
- name: ANTHROPIC_API_BASE
  value: {{ . | quote }}
{{- end }}
{{- if .Values.otel.enabled }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .Values.otel.endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ .Values.otel.protocol | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ .Values.otel.serviceName | default (include "model-router.fullname" .) | quote }}
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- $attrs := list "k8s.pod.name=$(K8S_POD_NAME)" (printf "k8s.namespace.name=%s" .Release.Namespace) }}
{{- range $k, $v := .Values.otel.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%s" $k $v) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attrs | quote }}
{{- end }}
{{- if .Values.tenants.enabled }}
- name: ROUTER_TENANTS_FILE
  value: {{ printf "%s/tenants.yaml" (include "model-router.tenantsDir" .) | quote }}
- name: ROUTER_TENANTS_RELOAD_INTERVAL_S
  value: {{ .Values.tenants.reloadIntervalSeconds | quote }}
- name: ROUTER_REDIS_FAILURE_BUDGETS
  value: {{ .Values.tenants.redisFailure.budgets | quote }}
- name: ROUTER_REDIS_FAILURE_RATE_LIMITS
  value: {{ .Values.tenants.redisFailure.rateLimits | quote }}
{{- end }}
- name: ROUTER_QUEUE_TIMEOUT_S
  value: {{ .Values.tenants.queueTimeoutSeconds | quote }}
{{- /* The most replicas that may run at once: with budgets or rates, >1 needs Redis (the gateway checks). */}}
- name: ROUTER_REPLICAS
  value: {{ ternary .Values.autoscaling.maxReplicas .Values.replicaCount .Values.autoscaling.enabled | quote }}
{{- with include "model-router.redis.url" . }}
- name: ROUTER_REDIS_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.redis.auth.existingSecret }}
- name: ROUTER_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.redis.auth.secretKey }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Cross-field checks the schema cannot phrase helpfully. Each message names the key and the fix. */}}
{{- define "model-router.validate" -}}
{{- if and .Values.clientKeys.enabled (not .Values.clientKeys.existingSecret) }}
{{- fail "clientKeys.enabled: set clientKeys.existingSecret to an existing Secret whose key clientKeys.secretKey holds one bearer key per line" }}
{{- end }}
{{- if and .Values.otel.enabled (not .Values.otel.endpoint) }}
{{- fail "otel.enabled: set otel.endpoint, e.g. http://otel-collector.observability:4318" }}
{{- end }}
{{- $cache := .Values.kimi.modelCache }}
{{- if and .Values.kimi.enabled (gt (int .Values.kimi.replicas) 1) (not $cache.existingClaim) $cache.persistence.enabled (not (has "ReadWriteMany" $cache.persistence.accessModes)) }}
{{- fail "kimi.replicas > 1 cannot share the chart's ReadWriteOnce cache PVC across GPU nodes; set kimi.modelCache.existingClaim to a ReadWriteMany claim, add ReadWriteMany to kimi.modelCache.persistence.accessModes, or set kimi.modelCache.persistence.enabled=false (emptyDir per pod)" }}
{{- end }}
{{- if and .Values.tenants.enabled (not .Values.tenants.existingSecret) }}
{{- fail "tenants.enabled: set tenants.existingSecret to an existing Secret whose key tenants.secretKey holds the tenants file (model-router keys create --file tenants.yaml)" }}
{{- end }}
{{- if and .Values.redis.enabled (not .Values.redis.auth.existingSecret) }}
{{- fail "redis.enabled: set redis.auth.existingSecret to an existing Secret whose key redis.auth.secretKey holds the Redis password" }}
{{- end }}
{{- if and .Values.httpRoute.enabled (not .Values.httpRoute.parentRefs) }}
{{- fail "httpRoute.enabled: set httpRoute.parentRefs to the Gateway(s) to attach to, e.g. [{name: public, namespace: gateway-system}]" }}
{{- end }}
{{- end }}
