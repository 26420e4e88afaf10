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

{{/* Namespace where the API creates campaigns. */}}
{{- define "notifq.campaignNamespace" -}}
{{- .Values.api.campaignNamespace | default .Release.Namespace }}
{{- end }}

{{/* The Secret the chart renders: explicit credentials and connection URLs only, never a
     random value, so every render of the same values is identical (helm template, Tilt,
     Argo CD). */}}
{{- define "notifq.secretName" -}}
{{- include "notifq.fullname" . }}
{{- end }}

{{/* The Secret that `notifq-secrets ensure` (the secrets Job) creates once with random
     values for the credentials not set explicitly, and never changes. */}}
{{- define "notifq.generatedSecretName" -}}
{{- include "notifq.fullname" . }}-generated
{{- end }}

{{/* Credentials this release needs, as YAML: key -> {value: explicit value or "", length}. */}}
{{- define "notifq.credentials" -}}
{{- if not .Values.api.existingSecret }}
jwt-secret: {value: {{ .Values.api.jwtSecret | quote }}, length: 48}
admin-password: {value: {{ .Values.api.adminPassword | quote }}, length: 24}
{{- end }}
{{- if .Values.postgres.inChart.enabled }}
postgres-password: {value: {{ .Values.postgres.inChart.password | quote }}, length: 32}
{{- end }}
{{- if and .Values.redis.inChart.enabled (not .Values.redis.existingSecret.name) }}
redis-password: {value: {{ .Values.redis.inChart.password | quote }}, length: 32}
{{- end }}
{{- end }}

{{/* "key:length" of every credential the secrets Job generates, space separated ("" if none). */}}
{{- define "notifq.generatedKeys" -}}
{{- $keys := list }}
{{- range $key, $c := include "notifq.credentials" . | fromYaml }}
{{- if not $c.value }}
{{- $keys = append $keys (printf "%s:%d" $key (int $c.length)) }}
{{- end }}
{{- end }}
{{- join " " $keys }}
{{- end }}

{{/* secretKeyRef of one credential: (dict "ctx" $ "key" "jwt-secret"). The chart's Secret
     when its value is set explicitly, else the generated Secret; api.existingSecret for the
     API's keys when set. */}}
{{- define "notifq.credentialRef" -}}
{{- $c := get (include "notifq.credentials" .ctx | fromYaml) .key | default dict }}
{{- if and (has .key (list "jwt-secret" "admin-password")) .ctx.Values.api.existingSecret -}}
name: {{ .ctx.Values.api.existingSecret }}
{{- else if $c.value -}}
name: {{ include "notifq.secretName" .ctx }}
{{- else -}}
name: {{ include "notifq.generatedSecretName" .ctx }}
{{- end }}
key: {{ .key }}
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

{{/* Environment every notifq container gets: the connection URLs. With the in-chart
     Postgres the database URL is composed from the password (the kubelet expands
     $(POSTGRES_PASSWORD)), so it always matches what Postgres was initialised with. */}}
{{- define "notifq.connectionEnv" -}}
{{- if .Values.postgres.existingSecret.name -}}
- name: NOTIFQ_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.postgres.existingSecret.name }}
      key: {{ .Values.postgres.existingSecret.key }}
{{- else if .Values.postgres.inChart.enabled -}}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      {{- include "notifq.credentialRef" (dict "ctx" . "key" "postgres-password") | nindent 6 }}
- name: NOTIFQ_DATABASE_URL
  value: {{ printf "postgresql://notifq:$(POSTGRES_PASSWORD)@%s:5432/notifq" (include "notifq.componentName" (dict "ctx" . "component" "postgres")) }}
{{- else -}}
- name: NOTIFQ_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "notifq.secretName" . }}
      key: database-url
{{- end }}
{{- if and .Values.redis.inChart.enabled (not .Values.redis.existingSecret.name) }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      {{- include "notifq.credentialRef" (dict "ctx" . "key" "redis-password") | nindent 6 }}
- name: NOTIFQ_REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:6379/0" (include "notifq.componentName" (dict "ctx" . "component" "redis")) }}
{{- else }}
- name: NOTIFQ_REDIS_URL
  valueFrom:
    secretKeyRef:
      {{- include "notifq.redisUrlRef" . | nindent 6 }}
{{- end }}
{{- end }}

{{/* Init container of every notifq pod: wait for Postgres and the migrated schema
     (`notifq-migrate wait`), so nothing starts before the schema exists and nothing
     crash-loops while Postgres comes up. */}}
{{- define "notifq.waitForSchema" -}}
- name: wait-for-schema
  image: {{ include "notifq.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: [notifq-migrate, wait, --timeout, {{ .Values.migrations.waitTimeoutSeconds | quote }}]
  env:
    {{- include "notifq.connectionEnv" . | nindent 4 }}
  securityContext:
    {{- toYaml .Values.containerSecurityContext | nindent 4 }}
  resources:
    {{- toYaml .Values.jobs.resources | nindent 4 }}
  volumeMounts:
    {{- include "notifq.tmpMount" . | nindent 4 }}
{{- end }}

{{/* A Job's name: <fullname>-<what>-<hash of its pod spec>. A changed spec is a new Job
     (a Job's template is immutable), the same spec the same Job (apply is a no-op).
     (dict "ctx" $ "what" "migrate" "pod" $podYaml) */}}
{{- define "notifq.jobName" -}}
{{- printf "%s-%s-%s" (include "notifq.fullname" .ctx | trunc 44 | trimSuffix "-") .what (.pod | sha256sum | trunc 8) }}
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

{{/* Refuse values the schema cannot express. */}}
{{- define "notifq.validate" -}}
{{- if gt (int .Values.worker.autoscaling.minReplicas) (int .Values.worker.autoscaling.maxReplicas) }}
{{- fail "worker.autoscaling.minReplicas must not exceed worker.autoscaling.maxReplicas" }}
{{- end }}
{{- if and (or .Values.worker.aws.accessKeyId .Values.worker.aws.secretAccessKey) (not (and .Values.worker.aws.accessKeyId .Values.worker.aws.secretAccessKey)) }}
{{- fail "worker.aws: set both accessKeyId and secretAccessKey, or neither" }}
{{- end }}
{{- with .Values.operator.leaderElection }}
{{- if not (and (lt (float64 .renewIntervalSeconds) (float64 .renewDeadlineSeconds)) (lt (float64 .renewDeadlineSeconds) (float64 .leaseDurationSeconds))) }}
{{- fail "operator.leaderElection: renewIntervalSeconds < renewDeadlineSeconds < leaseDurationSeconds is required" }}
{{- end }}
{{- end }}

{{- end }}

{{- define "notifq.commonConfig" -}}
NOTIFQ_ENVIRONMENT: {{ .Values.config.environment | quote }}
NOTIFQ_LOG_LEVEL: {{ .Values.config.logLevel | quote }}
NOTIFQ_QUEUE_PREFIX: {{ .Values.config.queuePrefix | quote }}
NOTIFQ_QUEUE_NAME: {{ .Values.config.queueName | quote }}
NOTIFQ_RENDER_CPU_MS: {{ .Values.config.renderCpuMs | int | quote }}
NOTIFQ_RENDER_BATCH_CPU_MS: {{ .Values.config.renderBatchCpuMs | int | quote }}
NOTIFQ_RENDER_MEMORY_MB: {{ .Values.config.renderMemoryMb | int | quote }}
NOTIFQ_RENDER_MAX_OUTPUT_BYTES: {{ .Values.config.renderMaxOutputBytes | int | quote }}
NOTIFQ_RENDER_PROCESSES: {{ .Values.config.renderProcesses | int | quote }}
NOTIFQ_PUSH_ARN_PREFIXES: {{ .Values.config.pushArnPrefixes | toJson | quote }}
{{- end }}

{{/* Pod-spec fragments every notifq pod shares. */}}
{{- define "notifq.podCommon" -}}
{{- /* No Docker-link variables: Services named <release>-api, -redis, -postgres
  would otherwise inject <SERVICE>_PORT=tcp://... variables (notifq-api: exactly the API
  port setting's name) into the settings' own prefix (found on a real node: the API
  crash-looped). */}}
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
  verbs: [get, list, watch, patch, delete]  # delete: ttlSecondsAfterFinished
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

{{/*
AWS credentials from the chart's Secret (or worker.aws.existingSecret): the workers send
through SES/SNS with them, the operator reads recipients.s3 lists with them. Nothing when
none are set (the pod's own identity: IRSA, instance role).
*/}}
{{- define "notifq.awsEnv" -}}
{{- $aws := .Values.worker.aws.existingSecret | default (and .Values.worker.aws.accessKeyId (include "notifq.componentName" (dict "ctx" . "component" "aws"))) }}
{{- if $aws }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $aws }}
      key: AWS_ACCESS_KEY_ID
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $aws }}
      key: AWS_SECRET_ACCESS_KEY
{{- end }}
{{- end }}

{{/* NetworkPolicy peers: this release's pods of the given components,
  (dict "ctx" $ "components" (list "api" ...)). */}}
{{- define "notifq.releasePeers" -}}
- podSelector:
    matchExpressions:
      - {key: app.kubernetes.io/name, operator: In, values: [{{ include "notifq.name" .ctx | quote }}]}
      - {key: app.kubernetes.io/instance, operator: In, values: [{{ .ctx.Release.Name | quote }}]}
      - {key: app.kubernetes.io/component, operator: In, values: {{ toJson .components }}}
{{- end }}
{{/* NetworkPolicy `from` of the metrics ports: networkPolicy.metricsFrom, or anyone. */}}
{{- define "notifq.metricsPeers" -}}
{{- with .Values.networkPolicy.metricsFrom }}
from:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- /* One-click unsubscribe settings of the API and the workers (the keys: unsubscribeEnv). */}}
{{- define "notifq.unsubscribeConfig" -}}
{{- with .Values.deliverability.publicBaseUrl }}
NOTIFQ_PUBLIC_BASE_URL: {{ . | quote }}
{{- end }}
{{- with .Values.deliverability.unsubscribe.mailto }}
NOTIFQ_UNSUBSCRIBE_MAILTO: {{ . | quote }}
{{- end }}
{{- end }}

{{- /* The unsubscribe signing keys from their Secret (the chart's or an existing one). */}}
{{- define "notifq.unsubscribeEnv" -}}
{{- $u := .Values.deliverability.unsubscribe }}
{{- $secret := $u.existingSecret | default (and $u.keys (include "notifq.componentName" (dict "ctx" . "component" "unsubscribe"))) }}
{{- if $secret }}
- name: NOTIFQ_UNSUBSCRIBE_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: unsubscribe-keys
{{- end }}
{{- end }}
