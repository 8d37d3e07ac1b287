{{/* Names and labels. */}}
{{- define "stockpipe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "stockpipe.fullname" -}}
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

{{/* Name of one component's objects: <fullname>-<component>. Call with (list $ "producer"). */}}
{{- define "stockpipe.componentName" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "stockpipe.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "stockpipe.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "stockpipe.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "stockpipe.labels" -}}
{{- $root := index . 0 -}}
{{ include "stockpipe.selectorLabels" . }}
app.kubernetes.io/part-of: stockpipe
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" }}
{{- with $root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Liveness and readiness on one HTTP endpoint: (dict "path" "/healthz" "port" "metrics" "liveDelay" 20 "readyDelay" 5),
optionally "liveFailures" (consecutive failed liveness checks, 20 s apart, before a restart; default 3). */}}
{{- define "stockpipe.httpProbes" -}}
livenessProbe:
  httpGet: {path: {{ .path }}, port: {{ .port }}}
  initialDelaySeconds: {{ .liveDelay }}
  periodSeconds: 20
  timeoutSeconds: 5
  failureThreshold: {{ .liveFailures | default 3 }}
readinessProbe:
  httpGet: {path: {{ .path }}, port: {{ .port }}}
  initialDelaySeconds: {{ .readyDelay }}
  periodSeconds: 10
  timeoutSeconds: 5
{{- end }}

{{/* Image reference: (list $ "stockpipe"): repository@digest when a digest is set, else repository:tag. */}}
{{- define "stockpipe.image" -}}
{{- $image := index (index . 0).Values.images (index . 1) }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository $image.tag }}
{{- end }}
{{- end }}

{{/*
A workload's ServiceAccount: (list $ "producer" $values). Its own (<fullname>-<component>, or
serviceAccount.name) when serviceAccount.create, else serviceAccount.name or the namespace's default.
*/}}
{{- define "stockpipe.serviceAccountName" -}}
{{- $sa := (index . 2).serviceAccount }}
{{- if $sa.create }}
{{- default (include "stockpipe.componentName" (list (index . 0) (index . 1))) $sa.name }}
{{- else }}
{{- default "default" $sa.name }}
{{- end }}
{{- end }}

{{/*
The ServiceAccount object of a workload (when serviceAccount.create): (list $ "producer" $values).
No token is mounted unless the workload asks for it in its pod (only the operator does).
*/}}
{{- define "stockpipe.serviceAccount" -}}
{{- $root := index . 0 }}
{{- $component := index . 1 }}
{{- $c := index . 2 }}
{{- if and $c.enabled $c.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "stockpipe.serviceAccountName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "stockpipe.labels" (list $root $component) | nindent 4 }}
  {{- with $c.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- end }}
{{- end }}

{{/*
The pod template's metadata, the same for every workload:
(dict "root" $ "component" "producer" "values" $c ["config" <text whose checksum restarts the pods>]).
*/}}
{{- define "stockpipe.podMetadata" -}}
{{- $c := .values -}}
labels:
  {{- include "stockpipe.labels" (list .root .component) | nindent 2 }}
{{- if or .config $c.podAnnotations }}
annotations:
  {{- with .config }}
  checksum/config: {{ . | sha256sum }}
  {{- end }}
  {{- with $c.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
The pod-level knobs every workload has, from its values: ServiceAccount, security context, pull Secrets,
nodeSelector, tolerations, affinity, topologySpreadConstraints.
(dict "root" $ "component" "producer" "values" $c ["automountToken" true]).
*/}}
{{- define "stockpipe.podSpecCommon" -}}
{{- $c := .values -}}
serviceAccountName: {{ include "stockpipe.serviceAccountName" (list .root .component $c) }}
automountServiceAccountToken: {{ .automountToken | default false }}
securityContext:
  {{- include "stockpipe.podSecurityContext" .root | nindent 2 }}
{{- include "stockpipe.imagePullSecrets" .root }}
{{- with $c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Security: restricted Pod Security Standard for every pod and container. */}}
{{- define "stockpipe.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
fsGroup: {{ .Values.podSecurity.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "stockpipe.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "stockpipe.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The Airflow subchart's fullname, derived as the official chart derives `airflow.fullname`: its
fullnameOverride, else the release name when it contains the chart name ("airflow", or its nameOverride),
else <release>-airflow.
*/}}
{{- define "stockpipe.airflowFullname" -}}
{{- $a := .Values.airflow }}
{{- if $a.fullnameOverride }}
{{- $a.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default "airflow" $a.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Airflow chart's API server Service (its UI): <airflow fullname>-api-server, unless set. */}}
{{- define "stockpipe.airflowService" -}}
{{- default (printf "%s-api-server" (include "stockpipe.airflowFullname" .)) .Values.ingress.airflowServiceName }}
{{- end }}

{{/* The Airflow scheduler's ServiceAccount: airflow.scheduler.serviceAccount.name, else the official chart's <fullname>-scheduler. */}}
{{- define "stockpipe.airflowSchedulerServiceAccount" -}}
{{- $sa := ((.Values.airflow.scheduler).serviceAccount) | default dict }}
{{- default (printf "%s-scheduler" (include "stockpipe.airflowFullname" .)) $sa.name }}
{{- end }}

{{/* Release-scoped names (empty value: <fullname>-<suffix>), so two releases can share a namespace. */}}
{{- define "stockpipe.watchlistConfigMap" -}}
{{- default (include "stockpipe.componentName" (list . "watchlist")) .Values.operator.configmapName }}
{{- end }}

{{- define "stockpipe.jobsServiceAccount" -}}
{{- default (include "stockpipe.componentName" (list . "jobs")) .Values.jobs.serviceAccountName }}
{{- end }}

{{- define "stockpipe.jobsEnvConfigMap" -}}
{{- default (include "stockpipe.componentName" (list . "jobs-env")) .Values.jobs.envConfigMapName }}
{{- end }}

{{/*
The Airflow subchart's values must wire its scheduler to this chart's objects: its extraEnvFrom reads
jobs.airflowEnvConfigMapName, its scheduler mounts jobs.podTemplateConfigMapName where
STOCKPIPE_AIRFLOW__POD_TEMPLATE_FILE points, and it runs under a ServiceAccount of its own (bound to
the pod-launcher Role). Fails naming the field that differs.
*/}}
{{- define "stockpipe.validateAirflowWiring" -}}
{{- $a := .Values.airflow }}
{{- $j := .Values.jobs }}
{{- if $a.enabled }}
{{- $envFrom := list }}
{{- if kindIs "string" $a.extraEnvFrom }}{{ $envFrom = $a.extraEnvFrom | fromYamlArray }}{{ else }}{{ $envFrom = $a.extraEnvFrom | default list }}{{ end }}
{{- $names := list }}
{{- range $envFrom }}{{ with .configMapRef }}{{ $names = append $names .name }}{{ end }}{{ end }}
{{- if not (has $j.airflowEnvConfigMapName $names) }}
{{- fail (printf "airflow.extraEnvFrom must have a configMapRef to jobs.airflowEnvConfigMapName (%s); it has %v" $j.airflowEnvConfigMapName $names) }}
{{- end }}
{{- $scheduler := $a.scheduler | default dict }}
{{- $volume := "" }}
{{- range ($scheduler.extraVolumes | default list) }}{{ if eq ((.configMap | default dict).name | default "") $j.podTemplateConfigMapName }}{{ $volume = .name }}{{ end }}{{ end }}
{{- if not $volume }}
{{- fail (printf "airflow.scheduler.extraVolumes must have a configMap volume of jobs.podTemplateConfigMapName (%s)" $j.podTemplateConfigMapName) }}
{{- end }}
{{- $mounted := false }}
{{- range ($scheduler.extraVolumeMounts | default list) }}{{ if and (eq .name $volume) (eq (trimSuffix "/" .mountPath) "/opt/stockpipe/pod-template") }}{{ $mounted = true }}{{ end }}{{ end }}
{{- if not $mounted }}
{{- fail (printf "airflow.scheduler.extraVolumeMounts must mount the volume %s (jobs.podTemplateConfigMapName) at /opt/stockpipe/pod-template, where STOCKPIPE_AIRFLOW__POD_TEMPLATE_FILE points" $volume) }}
{{- end }}
{{- $sa := ($scheduler.serviceAccount | default dict) }}
{{- if and (hasKey $sa "create") (not $sa.create) (not $sa.name) }}
{{- fail "airflow.scheduler.serviceAccount.name is required when airflow.scheduler.serviceAccount.create is false: the pod-launcher Role is bound to the scheduler's ServiceAccount by name" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Kafka. */}}
{{- define "stockpipe.kafkaCluster" -}}
{{- include "stockpipe.componentName" (list . "kafka") }}
{{- end }}

{{- define "stockpipe.kafkaBootstrap" -}}
{{- if .Values.kafka.external.enabled }}
{{- .Values.kafka.external.bootstrapServers }}
{{- else }}
{{- printf "%s-kafka-bootstrap.%s.svc:9093" (include "stockpipe.kafkaCluster" .) .Release.Namespace }}
{{- end }}
{{- end }}

{{- define "stockpipe.kafkaProtocol" -}}
{{- if .Values.kafka.external.enabled }}{{ .Values.kafka.external.securityProtocol }}{{ else }}SASL_SSL{{ end }}
{{- end }}

{{- define "stockpipe.kafkaUsesSasl" -}}
{{- if hasPrefix "SASL_" (include "stockpipe.kafkaProtocol" .) }}true{{ end }}
{{- end }}

{{- define "stockpipe.kafkaCaSecret" -}}
{{- if .Values.kafka.external.enabled }}
{{- .Values.kafka.external.tls.caSecret }}
{{- else }}
{{- printf "%s-cluster-ca-cert" (include "stockpipe.kafkaCluster" .) }}
{{- end }}
{{- end }}

{{- define "stockpipe.kafkaCaKey" -}}
{{- if .Values.kafka.external.enabled }}{{ .Values.kafka.external.tls.caKey }}{{ else }}ca.crt{{ end }}
{{- end }}

{{/* KafkaUser (and its Secret) of a workload: (list $ "producer"). */}}
{{- define "stockpipe.kafkaUser" -}}
{{- include "stockpipe.componentName" . }}
{{- end }}

{{/* The SASL user name a workload logs in as. */}}
{{- define "stockpipe.kafkaUsername" -}}
{{- $root := index . 0 }}
{{- if $root.Values.kafka.external.enabled }}{{ $root.Values.kafka.external.sasl.username }}{{ else }}{{ include "stockpipe.kafkaUser" . }}{{ end }}
{{- end }}

{{/* Kafka settings of a workload's container: (list $ "producer"). */}}
{{- define "stockpipe.kafkaEnv" -}}
{{- $root := index . 0 }}
{{- $k := $root.Values.kafka -}}
- name: STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS
  value: {{ include "stockpipe.kafkaBootstrap" $root | quote }}
- name: STOCKPIPE_KAFKA__SECURITY_PROTOCOL
  value: {{ include "stockpipe.kafkaProtocol" $root | quote }}
{{- if include "stockpipe.kafkaUsesSasl" $root }}
- name: STOCKPIPE_KAFKA__SASL_MECHANISM
  value: {{ ternary $k.external.saslMechanism "SCRAM-SHA-512" $k.external.enabled | quote }}
- name: STOCKPIPE_KAFKA__SASL_USERNAME
  value: {{ include "stockpipe.kafkaUsername" . | quote }}
{{- end }}
{{- if include "stockpipe.kafkaCaSecret" $root }}
{{- if hasSuffix "SSL" (include "stockpipe.kafkaProtocol" $root) }}
- name: STOCKPIPE_KAFKA__SSL_CA_LOCATION
  value: /etc/stockpipe/kafka-ca/ca.crt
{{- end }}
{{- end }}
- name: STOCKPIPE_KAFKA__CREATE_TOPICS
  value: "false"
- name: STOCKPIPE_KAFKA__TOPIC_QUOTES
  value: {{ $k.topics.quotes.name | quote }}
- name: STOCKPIPE_KAFKA__TOPIC_TRADES
  value: {{ $k.topics.trades.name | quote }}
- name: STOCKPIPE_KAFKA__TOPIC_DLQ
  value: {{ $k.topics.dlq.name | quote }}
- name: STOCKPIPE_KAFKA__TOPIC_HEARTBEATS
  value: {{ $k.topics.heartbeats.name | quote }}
{{- /* The consumer announces the objects it writes here for the bronze loader; empty (no loader): it announces nothing. */}}
- name: STOCKPIPE_KAFKA__TOPIC_LAKE_OBJECTS
  value: {{ ternary $k.topics.lakeObjects.name "" $root.Values.bronzeLoader.enabled | quote }}
{{- end }}

{{- define "stockpipe.kafkaCaMounted" -}}
{{- if and (include "stockpipe.kafkaCaSecret" .) (hasSuffix "SSL" (include "stockpipe.kafkaProtocol" .)) }}true{{ end }}
{{- end }}

{{/* The lake. */}}
{{- define "stockpipe.lakeUrl" -}}
{{- $l := .Values.lake }}
{{- if $l.prefix }}{{ printf "s3://%s/%s" $l.bucket (trimAll "/" $l.prefix) }}{{ else }}{{ printf "s3://%s" $l.bucket }}{{ end }}
{{- end }}

{{- define "stockpipe.lakeEndpoint" -}}
{{- if eq .Values.lake.mode "tenant" }}
{{- printf "http://minio.%s.svc:80" .Release.Namespace }}
{{- else }}
{{- .Values.lake.endpoint }}
{{- end }}
{{- end }}

{{- define "stockpipe.lakeEnv" -}}
- name: STOCKPIPE_LAKE__URL
  value: {{ include "stockpipe.lakeUrl" . | quote }}
- name: STOCKPIPE_LAKE__REGION
  value: {{ .Values.lake.region | quote }}
{{- with include "stockpipe.lakeEndpoint" . }}
- name: STOCKPIPE_LAKE__S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{/* The warehouse settings of the dashboard (and the job pods' ConfigMap). */}}
{{- define "stockpipe.warehouseEnv" -}}
{{- $w := .Values.warehouse -}}
- name: STOCKPIPE_WAREHOUSE__TARGET
  value: {{ $w.target | quote }}
{{- if eq $w.target "duckdb" }}
- name: STOCKPIPE_WAREHOUSE__DUCKDB_PATH
  value: /var/lib/stockpipe/warehouse/stockpipe.duckdb
{{- else }}
- name: STOCKPIPE_WAREHOUSE__SNOWFLAKE__ACCOUNT
  value: {{ $w.snowflake.account | quote }}
- name: STOCKPIPE_WAREHOUSE__SNOWFLAKE__USER
  value: {{ $w.snowflake.user | quote }}
- name: STOCKPIPE_WAREHOUSE__SNOWFLAKE__ROLE
  value: {{ $w.snowflake.role | quote }}
- name: STOCKPIPE_WAREHOUSE__SNOWFLAKE__WAREHOUSE
  value: {{ $w.snowflake.warehouse | quote }}
- name: STOCKPIPE_WAREHOUSE__SNOWFLAKE__DATABASE
  value: {{ $w.snowflake.database | quote }}
- name: STOCKPIPE_WAREHOUSE__SNOWFLAKE__STAGE_MODE
  value: {{ $w.snowflake.stageMode | quote }}
{{- with $w.snowflake.stageUrl }}
- name: STOCKPIPE_WAREHOUSE__SNOWFLAKE__STAGE_URL
  value: {{ . | quote }}
{{- end }}
{{- with $w.snowflake.storageIntegration }}
- name: STOCKPIPE_WAREHOUSE__SNOWFLAKE__STORAGE_INTEGRATION
  value: {{ . | quote }}
{{- end }}
- name: STOCKPIPE_WAREHOUSE__SNOWFLAKE__AUTHENTICATOR
  value: SNOWFLAKE_JWT
- name: STOCKPIPE_WAREHOUSE__SNOWFLAKE__PRIVATE_KEY_FILE
  value: /etc/stockpipe/snowflake/rsa_key.p8
{{- end }}
{{- end }}

{{/* The DuckDB warehouse volume's claim. */}}
{{- define "stockpipe.warehouseClaim" -}}
{{- default (include "stockpipe.componentName" (list . "warehouse")) .Values.warehouse.duckdb.persistence.existingClaim }}
{{- end }}

{{/*
The warehouse in a pod: the DuckDB volume (file and writer lock) or the Snowflake private key.
(list $ false): read-write (the loaders); (list $ true): read-only (the dashboard).
*/}}
{{- define "stockpipe.warehouseMounts" -}}
{{- $root := index . 0 }}
{{- if eq $root.Values.warehouse.target "duckdb" -}}
- name: warehouse
  mountPath: /var/lib/stockpipe/warehouse
  {{- if index . 1 }}
  readOnly: true
  {{- end }}
{{- else -}}
- name: snowflake-key
  mountPath: /etc/stockpipe/snowflake
  readOnly: true
{{- end }}
{{- end }}

{{- define "stockpipe.warehouseVolumes" -}}
{{- $root := index . 0 }}
{{- if eq $root.Values.warehouse.target "duckdb" -}}
- name: warehouse
  persistentVolumeClaim:
    claimName: {{ include "stockpipe.warehouseClaim" $root }}
    {{- if index . 1 }}
    readOnly: true
    {{- end }}
{{- else -}}
- name: snowflake-key
  secret:
    secretName: {{ $root.Values.secrets.snowflake.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ $root.Values.secrets.snowflake.privateKeyKey }}
        path: rsa_key.p8
{{- end }}
{{- end }}

{{/*
Secrets of a workload as one projected volume at STOCKPIPE_SECRETS_DIR, one file per setting named like
its variable: (list $ "producer" (list "kafka" "finnhub" "slack" "lake")). Renders the volume's
`sources`, or nothing when no Secret applies.
*/}}
{{- define "stockpipe.secretSources" -}}
{{- $root := index . 0 }}
{{- $component := index . 1 }}
{{- $wants := index . 2 }}
{{- $v := $root.Values }}
{{- if and (has "kafka" $wants) (include "stockpipe.kafkaUsesSasl" $root) }}
{{- if $v.kafka.external.enabled }}
- secret:
    name: {{ $v.kafka.external.sasl.existingSecret }}
    items:
      - key: {{ $v.kafka.external.sasl.passwordKey }}
        path: STOCKPIPE_KAFKA__SASL_PASSWORD
{{- else }}
- secret:
    name: {{ include "stockpipe.kafkaUser" (list $root $component) }}
    items:
      - key: password
        path: STOCKPIPE_KAFKA__SASL_PASSWORD
{{- end }}
{{- end }}
{{- if and (has "finnhub" $wants) $v.secrets.finnhub.existingSecret }}
- secret:
    name: {{ $v.secrets.finnhub.existingSecret }}
    items:
      - key: {{ $v.secrets.finnhub.key }}
        path: STOCKPIPE_FINNHUB_TOKEN
{{- end }}
{{- if and (has "slack" $wants) $v.secrets.slack.existingSecret }}
- secret:
    name: {{ $v.secrets.slack.existingSecret }}
    items:
      - key: {{ $v.secrets.slack.key }}
        path: STOCKPIPE_SLACK_WEBHOOK_URL
{{- end }}
{{- if and (has "lake" $wants) $v.lake.credentials.existingSecret }}
- secret:
    name: {{ $v.lake.credentials.existingSecret }}
    items:
      - key: {{ $v.lake.credentials.accessKeyKey }}
        path: STOCKPIPE_LAKE__ACCESS_KEY
      - key: {{ $v.lake.credentials.secretKeyKey }}
        path: STOCKPIPE_LAKE__SECRET_KEY
{{- end }}
{{- end }}

{{/* Volumes every stockpipe pod has: scratch /tmp, secrets, the Kafka CA. (list $ "producer" wants) */}}
{{- define "stockpipe.commonVolumes" -}}
{{- $root := index . 0 }}
{{- $wants := index . 2 -}}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- with include "stockpipe.secretSources" . }}
- name: secrets
  projected:
    defaultMode: 0440
    sources:
      {{- . | nindent 6 }}
{{- end }}
{{- if and (has "kafka" $wants) (include "stockpipe.kafkaCaMounted" $root) }}
- name: kafka-ca
  secret:
    secretName: {{ include "stockpipe.kafkaCaSecret" $root }}
    defaultMode: 0440
    items:
      - key: {{ include "stockpipe.kafkaCaKey" $root }}
        path: ca.crt
{{- end }}
{{- end }}

{{- define "stockpipe.commonMounts" -}}
{{- $root := index . 0 }}
{{- $wants := index . 2 -}}
- name: tmp
  mountPath: /tmp
{{- if include "stockpipe.secretSources" . }}
- name: secrets
  mountPath: /var/run/secrets/stockpipe
  readOnly: true
{{- end }}
{{- if and (has "kafka" $wants) (include "stockpipe.kafkaCaMounted" $root) }}
- name: kafka-ca
  mountPath: /etc/stockpipe/kafka-ca
  readOnly: true
{{- end }}
{{- end }}

{{- define "stockpipe.secretsDirEnv" -}}
{{- if include "stockpipe.secretSources" . }}
- name: STOCKPIPE_SECRETS_DIR
  value: /var/run/secrets/stockpipe
{{- end }}
{{- end }}

{{/*
Checks across values that JSON Schema cannot express: comparisons between two values, and the Airflow
subchart's wiring against this chart's names. Each fails with the field named. Every conditional
requirement (a field required when another has some value) lives in values.schema.json, and only there.
*/}}
{{- define "stockpipe.validate" -}}
{{- $v := .Values }}
{{- $k := $v.kafka }}
{{- if gt (int $v.consumer.replicas) (int $k.topics.quotes.partitions) }}
{{- fail (printf "consumer.replicas (%d) must not exceed kafka.topics.quotes.partitions (%d): a consumer beyond the partition count idles" (int $v.consumer.replicas) (int $k.topics.quotes.partitions)) }}
{{- end }}
{{- if gt (int $k.minInsyncReplicas) (int $k.replicas) }}
{{- fail (printf "kafka.minInsyncReplicas (%d) must not exceed kafka.replicas (%d): no write could ever succeed" (int $k.minInsyncReplicas) (int $k.replicas)) }}
{{- end }}
{{- if and (not $k.external.enabled) (gt (int $k.replicas) (int $k.strimzi.nodes)) }}
{{- fail (printf "kafka.replicas (%d) must not exceed kafka.strimzi.nodes (%d): a topic cannot have more replicas than brokers" (int $k.replicas) (int $k.strimzi.nodes)) }}
{{- end }}
{{- if and (eq $v.warehouse.target "duckdb") (has "ReadWriteOncePod" $v.warehouse.duckdb.persistence.accessModes) }}
{{- fail "warehouse.duckdb.persistence.accessModes: ReadWriteOncePod lets one pod mount the DuckDB volume, but the bronze loader, the Airflow job pods and the dashboard share it (ReadWriteOnce on one node, ReadWriteMany across nodes)" }}
{{- end }}
{{- include "stockpipe.validateAirflowWiring" . }}
{{- end }}

{{/* Kafdrop's Kafka client properties. */}}
{{- define "stockpipe.kafdropProperties" -}}
security.protocol={{ include "stockpipe.kafkaProtocol" . }}
{{- if include "stockpipe.kafkaUsesSasl" . }}
{{- $mechanism := ternary .Values.kafka.external.saslMechanism "SCRAM-SHA-512" .Values.kafka.external.enabled }}
sasl.mechanism={{ $mechanism }}
config.providers=dir
config.providers.dir.class=org.apache.kafka.common.config.provider.DirectoryConfigProvider
sasl.jaas.config={{ ternary "org.apache.kafka.common.security.plain.PlainLoginModule" "org.apache.kafka.common.security.scram.ScramLoginModule" (eq $mechanism "PLAIN") }} required username="{{ include "stockpipe.kafkaUsername" (list . "kafdrop") }}" password="${dir:/etc/kafdrop-sasl:password}";
{{- end }}
{{- if include "stockpipe.kafkaCaMounted" . }}
ssl.truststore.type=PEM
ssl.truststore.location=/etc/kafdrop-ca/ca.crt
{{- end }}
{{- end }}

{{/* The MinIO tenant's pods, as the operator labels them (v1.min.io/tenant on every pod of the Tenant). */}}
{{- define "stockpipe.lakeSelectorLabels" -}}
v1.min.io/tenant: {{ .Values.lake.tenant.name }}
{{- end }}

{{/*
Development mode (development.syncCode, set only by skaffold's dev profiles): the application code,
/app/jobs, becomes an emptyDir seeded from the image by an init container, so skaffold's file sync can
write into it while the root filesystem stays read-only, and the workload runs under watchfiles, which
restarts it (SIGINT, the same clean stop as SIGTERM) when a synced module changes. Production pods
render none of this.
*/}}
{{- define "stockpipe.devCodeEnabled" -}}
{{- if .Values.development.syncCode }}true{{ end }}
{{- end }}

{{/* The container's start: `args` for the image's `stockpipe` entrypoint, or watchfiles around it. (list $ args) */}}
{{- define "stockpipe.workloadStart" -}}
{{- $root := index . 0 }}
{{- $args := index . 1 -}}
{{- if include "stockpipe.devCodeEnabled" $root -}}
command:
  - watchfiles
  - --filter
  - python
  - --sigint-timeout
  - {{ $root.Values.development.stopTimeoutSeconds | quote }}
  - {{ printf "stockpipe %s" (join " " $args) | quote }}
  - /app/jobs
{{- else -}}
args: {{ toJson $args }}
{{- end }}
{{- end }}

{{/* The init container that copies the image's code into the writable code volume. (list $ imageKey) */}}
{{- define "stockpipe.devCodeInit" -}}
{{- $root := index . 0 }}
{{- $image := index . 1 -}}
{{- if include "stockpipe.devCodeEnabled" $root -}}
initContainers:
  - name: seed-code
    image: {{ include "stockpipe.image" (list $root $image) }}
    imagePullPolicy: {{ (index $root.Values.images $image).pullPolicy }}
    # The folder's contents only, without their owners and times: /code is the emptyDir's root, owned by root.
    command: [cp, -R, /app/jobs/., /code/]
    resources:
      requests: {cpu: 10m, memory: 32Mi}
      limits: {memory: 128Mi}
    securityContext:
      {{- include "stockpipe.containerSecurityContext" $root | nindent 6 }}
    volumeMounts:
      - name: app-code
        mountPath: /code
{{- end }}
{{- end }}

{{- define "stockpipe.devCodeMount" -}}
{{- if include "stockpipe.devCodeEnabled" . -}}
- name: app-code
  mountPath: /app/jobs
{{- end }}
{{- end }}

{{- define "stockpipe.devCodeVolume" -}}
{{- if include "stockpipe.devCodeEnabled" . -}}
- name: app-code
  emptyDir:
    sizeLimit: 256Mi
{{- end }}
{{- end }}
