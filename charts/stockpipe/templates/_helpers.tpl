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

{{/* Image reference: (list $ "stockpipe"). */}}
{{- define "stockpipe.image" -}}
{{- $image := index (index . 0).Values.images (index . 1) }}
{{- printf "%s:%s" $image.repository $image.tag }}
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

{{/* The Airflow chart's API server Service (its UI): <airflow fullname>-api-server, unless set. */}}
{{- define "stockpipe.airflowService" -}}
{{- if .Values.ingress.airflowServiceName }}
{{- .Values.ingress.airflowServiceName }}
{{- else if contains "airflow" .Release.Name }}
{{- printf "%s-api-server" .Release.Name }}
{{- else }}
{{- printf "%s-airflow-api-server" .Release.Name }}
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

{{/* Checks across values that the schema cannot express; each fails with the field named. */}}
{{- define "stockpipe.validate" -}}
{{- $v := .Values }}
{{- $k := $v.kafka }}
{{- if gt (int $v.consumer.replicas) (int $k.topics.quotes.partitions) }}
{{- fail (printf "consumer.replicas (%d) must not exceed kafka.topics.quotes.partitions (%d): a consumer beyond the partition count idles" (int $v.consumer.replicas) (int $k.topics.quotes.partitions)) }}
{{- end }}
{{- if gt (int $k.minInsyncReplicas) (int $k.replicas) }}
{{- fail (printf "kafka.minInsyncReplicas (%d) must not exceed kafka.replicas (%d): no write could ever succeed" (int $k.minInsyncReplicas) (int $k.replicas)) }}
{{- end }}
{{- if $k.external.enabled }}
{{- if not $k.external.bootstrapServers }}
{{- fail "kafka.external.bootstrapServers is required when kafka.external.enabled is true" }}
{{- end }}
{{- if and (hasPrefix "SASL_" $k.external.securityProtocol) (not (and $k.external.sasl.username $k.external.sasl.existingSecret)) }}
{{- fail (printf "kafka.external.sasl.username and kafka.external.sasl.existingSecret are required with kafka.external.securityProtocol %s" $k.external.securityProtocol) }}
{{- end }}
{{- else }}
{{- if gt (int $k.replicas) (int $k.strimzi.nodes) }}
{{- fail (printf "kafka.replicas (%d) must not exceed kafka.strimzi.nodes (%d): a topic cannot have more replicas than brokers" (int $k.replicas) (int $k.strimzi.nodes)) }}
{{- end }}
{{- end }}
{{- if and (eq $v.producer.source "finnhub") (not $v.secrets.finnhub.existingSecret) }}
{{- fail "secrets.finnhub.existingSecret is required when producer.source is finnhub" }}
{{- end }}
{{- if eq $v.lake.mode "tenant" }}
{{- if not $v.lake.tenant.configurationSecret }}
{{- fail "lake.tenant.configurationSecret is required when lake.mode is tenant (a Secret with config.env: MINIO_ROOT_USER/MINIO_ROOT_PASSWORD)" }}
{{- end }}
{{- if not $v.lake.credentials.existingSecret }}
{{- fail "lake.credentials.existingSecret is required when lake.mode is tenant (the workloads' S3 keys)" }}
{{- end }}
{{- end }}
{{- if eq $v.warehouse.target "snowflake" }}
{{- range $field := list "account" "user" }}
{{- if not (index $v.warehouse.snowflake $field) }}
{{- fail (printf "warehouse.snowflake.%s is required when warehouse.target is snowflake" $field) }}
{{- end }}
{{- end }}
{{- if not $v.secrets.snowflake.existingSecret }}
{{- fail "secrets.snowflake.existingSecret is required when warehouse.target is snowflake (the key pair's private key)" }}
{{- end }}
{{- if and $v.warehouse.snowflake.stageUrl (not $v.warehouse.snowflake.storageIntegration) }}
{{- fail "warehouse.snowflake.storageIntegration is required with warehouse.snowflake.stageUrl" }}
{{- end }}
{{- end }}
{{- if and (eq $v.warehouse.target "duckdb") (has "ReadWriteOncePod" $v.warehouse.duckdb.persistence.accessModes) }}
{{- fail "warehouse.duckdb.persistence.accessModes: ReadWriteOncePod lets one pod mount the DuckDB volume, but the bronze loader, the Airflow job pods and the dashboard share it (ReadWriteOnce on one node, ReadWriteMany across nodes)" }}
{{- end }}
{{- if and $v.ingress.enabled (not $v.ingress.className) }}
{{- fail "ingress.className is required when ingress.enabled is true (the chart assumes no controller: name yours, e.g. traefik)" }}
{{- end }}
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
