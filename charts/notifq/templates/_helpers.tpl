{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "notifq.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified release name; components append -operator, -api, ... (so 52 max). */}}
{{- define "notifq.fullname" -}}
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

{{- define "notifq.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "notifq.labels" -}}
helm.sh/chart: {{ include "notifq.chart" . }}
{{ include "notifq.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: notifq
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "notifq.selectorLabels" -}}
app.kubernetes.io/name: {{ include "notifq.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels / selector labels of one component: include with (dict "ctx" $ "component" "api"). */}}
{{- define "notifq.componentLabels" -}}
{{ include "notifq.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "notifq.componentSelectorLabels" -}}
{{ include "notifq.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Name of one component's objects: (dict "ctx" $ "component" "api"). */}}
{{- define "notifq.componentName" -}}
{{- printf "%s-%s" (include "notifq.fullname" .ctx) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "notifq.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "notifq.secretName" -}}
{{- include "notifq.fullname" . }}
{{- end }}

{{/* Namespace where the API creates campaigns. */}}
{{- define "notifq.campaignNamespace" -}}
{{- .Values.api.campaignNamespace | default .Release.Namespace }}
{{- end }}

{{/* secretKeyRef of the database URL. */}}
{{- define "notifq.databaseUrlRef" -}}
{{- if .Values.postgres.existingSecret.name -}}
name: {{ .Values.postgres.existingSecret.name }}
key: {{ .Values.postgres.existingSecret.key }}
{{- else -}}
name: {{ include "notifq.secretName" . }}
key: database-url
{{- end }}
{{- end }}

{{- define "notifq.redisUrlRef" -}}
{{- if .Values.redis.existingSecret.name -}}
name: {{ .Values.redis.existingSecret.name }}
key: {{ .Values.redis.existingSecret.key }}
{{- else -}}
name: {{ include "notifq.secretName" . }}
key: redis-url
{{- end }}
{{- end }}

{{/* Environment every notifq container gets: connection URLs from the Secret. */}}
{{- define "notifq.connectionEnv" -}}
- name: NOTIFQ_DATABASE_URL
  valueFrom:
    secretKeyRef:
      {{- include "notifq.databaseUrlRef" . | nindent 6 }}
- name: NOTIFQ_REDIS_URL
  valueFrom:
    secretKeyRef:
      {{- include "notifq.redisUrlRef" . | nindent 6 }}
{{- end }}

{{/* The emptyDir /tmp of every container (the root filesystem is read-only). */}}
{{- define "notifq.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{- define "notifq.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* A value kept across upgrades: the Secret's current value, else the given one, else random.
     (dict "existing" $secret "key" "jwt-secret" "value" .Values.api.jwtSecret "length" 48) */}}
{{- define "notifq.keepOrGenerate" -}}
{{- if .value -}}
{{- .value | b64enc }}
{{- else if (dig "data" .key "" .existing) -}}
{{- dig "data" .key "" .existing }}
{{- else -}}
{{- randAlphaNum (int .length) | b64enc }}
{{- end }}
{{- end }}

{{/* Refuse values the schema cannot express. */}}
{{- define "notifq.validate" -}}
{{- if gt (int .Values.worker.autoscaling.minReplicas) (int .Values.worker.autoscaling.maxReplicas) }}
{{- fail "worker.autoscaling.minReplicas must not exceed worker.autoscaling.maxReplicas" }}
{{- end }}
{{- if and (or .Values.worker.aws.accessKeyId .Values.worker.aws.secretAccessKey) (not (and .Values.worker.aws.accessKeyId .Values.worker.aws.secretAccessKey)) }}
{{- fail "worker.aws: set both accessKeyId and secretAccessKey, or neither" }}
{{- end }}
{{- end }}

{{- define "notifq.commonConfig" -}}
NOTIFQ_ENVIRONMENT: {{ .Values.config.environment | quote }}
NOTIFQ_LOG_LEVEL: {{ .Values.config.logLevel | quote }}
NOTIFQ_QUEUE_PREFIX: {{ .Values.config.queuePrefix | quote }}
NOTIFQ_QUEUE_NAME: {{ .Values.config.queueName | quote }}
{{- end }}

{{/* Pod-spec fragments every notifq pod shares. */}}
{{- define "notifq.podCommon" -}}
{{- /* No Docker-link variables: Services named <release>-api, -redis, -postgres
  would otherwise inject NOTIFQ_API_PORT=tcp://..., NOTIFQ_REDIS_PORT=... into the
  settings' own NOTIFQ_ prefix (found on a real node: the API crash-looped). */}}
enableServiceLinks: false
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .ctx.Values.podSecurityContext | nindent 2 }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The operator's rules on Campaigns and around them (cluster-wide or per namespace). */}}
{{- define "notifq.operatorCampaignRules" -}}
- apiGroups: [notifq.dev]
  resources: [campaigns]
  verbs: [get, list, watch, patch]
- apiGroups: [notifq.dev]
  resources: [campaigns/status]
  verbs: [get, patch, update]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
{{- end }}
