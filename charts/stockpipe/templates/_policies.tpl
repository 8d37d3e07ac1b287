{{/*
NetworkPolicies and KafkaUsers, built from each component's values (`<component>.networkPolicy`,
`<component>.kafkaUser`): the flows and grants are data a reviewer reads and a user overrides per
component; these helpers only translate names into rules.
*/}}

{{/* Egress rule of a named destination: dns, kafka, lake, https, apiServer. (list $ "kafka") */}}
{{- define "stockpipe.egressFlow" -}}
{{- $root := index . 0 }}
{{- $flow := index . 1 }}
{{- $np := $root.Values.networkPolicy }}
{{- $outside := list }}
{{- range $np.internetEgressCidrs }}{{ $outside = append $outside (dict "ipBlock" (dict "cidr" .)) }}{{ end }}
{{- if eq $flow "dns" }}
{{- toYaml (dict "ports" (list (dict "protocol" "UDP" "port" 53) (dict "protocol" "TCP" "port" 53))) }}
{{- else if eq $flow "kafka" }}
{{- if $root.Values.kafka.external.enabled }}
{{- toYaml (dict "to" $outside) }}
{{- else }}
{{- toYaml (dict "to" (list (dict "podSelector" (dict "matchLabels" (dict "strimzi.io/cluster" (include "stockpipe.kafkaCluster" $root) "strimzi.io/kind" "Kafka")))) "ports" (list (dict "protocol" "TCP" "port" 9093))) }}
{{- end }}
{{- else if eq $flow "lake" }}
{{- if eq $root.Values.lake.mode "tenant" }}
{{- toYaml (dict "to" (list (dict "podSelector" (dict "matchLabels" (include "stockpipe.lakeSelectorLabels" $root | fromYaml)))) "ports" (list (dict "protocol" "TCP" "port" 9000))) }}
{{- else }}
{{- toYaml (dict "to" $outside) }}
{{- end }}
{{- else if eq $flow "https" }}
{{- toYaml (dict "to" $outside "ports" (list (dict "protocol" "TCP" "port" 443))) }}
{{- else if eq $flow "apiServer" }}
{{- $to := list }}
{{- range $np.apiServerCidrs }}{{ $to = append $to (dict "ipBlock" (dict "cidr" .)) }}{{ end }}
{{- toYaml (dict "to" $to "ports" (list (dict "protocol" "TCP" "port" 443) (dict "protocol" "TCP" "port" 6443))) }}
{{- else }}
{{- fail (printf "unknown egress destination %q (dns, kafka, lake, https, apiServer)" $flow) }}
{{- end }}
{{- end }}

{{/* Ingress rule of a named source on a port: namespace, ingressController. (list $ "namespace" 9101) */}}
{{- define "stockpipe.ingressFlow" -}}
{{- $root := index . 0 }}
{{- $source := index . 1 }}
{{- $ports := list (dict "protocol" "TCP" "port" (int (index . 2))) }}
{{- if eq $source "namespace" }}
{{- toYaml (dict "from" (list (dict "podSelector" dict)) "ports" $ports) }}
{{- else if eq $source "ingressController" }}
{{- toYaml (dict "from" (list (dict "namespaceSelector" (dict "matchLabels" $root.Values.networkPolicy.ingressControllerNamespaceSelector))) "ports" $ports) }}
{{- else }}
{{- fail (printf "unknown ingress source %q (namespace, ingressController)" $source) }}
{{- end }}
{{- end }}

{{/*
A component's allow policy:
(dict "root" $ "component" "producer" "enabled" bool "policy" $c.networkPolicy ["port" 9101] ["selector" labels]).
ingressFrom sources reach `port`; egressTo names destinations; extraIngress/extraEgress are plain rules.
*/}}
{{- define "stockpipe.networkPolicy" -}}
{{- $root := .root }}
{{- $p := .policy }}
{{- if and $root.Values.networkPolicy.enabled .enabled }}
{{- $ingress := list }}
{{- range $p.ingressFrom }}{{ $ingress = append $ingress (include "stockpipe.ingressFlow" (list $root . $.port) | fromYaml) }}{{ end }}
{{- $ingress = concat $ingress ($p.extraIngress | default list) }}
{{- $egress := list }}
{{- range $p.egressTo }}{{ $egress = append $egress (include "stockpipe.egressFlow" (list $root .) | fromYaml) }}{{ end }}
{{- $egress = concat $egress ($p.extraEgress | default list) }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "stockpipe.componentName" (list $root (printf "allow-%s" .component)) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "stockpipe.labels" (list $root "network") | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- if .selector }}
      {{- toYaml .selector | nindent 6 }}
      {{- else }}
      {{- include "stockpipe.selectorLabels" (list $root .component) | nindent 6 }}
      {{- end }}
  policyTypes: [Ingress, Egress]
  {{- if $ingress }}
  ingress:
    {{- toYaml $ingress | nindent 4 }}
  {{- else }}
  ingress: []
  {{- end }}
  {{- if $egress }}
  egress:
    {{- toYaml $egress | nindent 4 }}
  {{- else }}
  egress: []
  {{- end }}
{{- end }}
{{- end }}

{{/* Whether a topic (a key of kafka.topics) exists in this release: lakeObjects only with the bronze loader. */}}
{{- define "stockpipe.topicRendered" -}}
{{- $root := index . 0 }}
{{- $key := index . 1 }}
{{- if not (hasKey $root.Values.kafka.topics $key) }}
{{- fail (printf "kafkaUser ACLs name the topic %q, which is no key of kafka.topics" $key) }}
{{- end }}
{{- if or (ne $key "lakeObjects") $root.Values.bronzeLoader.enabled }}true{{ end }}
{{- end }}

{{/*
A workload's Strimzi KafkaUser (SCRAM-SHA-512, simple ACLs) from its `kafkaUser` values:
(dict "root" $ "component" "producer" "enabled" bool "user" $c.kafkaUser).
write/read/describe name keys of kafka.topics; groups are {name, patternType} and describeGroups names,
both templates (tpl) so a value can follow another (e.g. "{{ .Values.consumer.groupId }}"); extraAcls are
plain Strimzi ACL rules.
*/}}
{{- define "stockpipe.kafkaUserObject" -}}
{{- $root := .root }}
{{- $u := .user }}
{{- $topics := $root.Values.kafka.topics }}
{{- if and .enabled (not $root.Values.kafka.external.enabled) }}
apiVersion: kafka.strimzi.io/v1
kind: KafkaUser
metadata:
  # The User Operator writes the SCRAM password into a Secret of this name (key `password`).
  name: {{ include "stockpipe.kafkaUser" (list $root .component) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "stockpipe.labels" (list $root "kafka") | nindent 4 }}
    strimzi.io/cluster: {{ include "stockpipe.kafkaCluster" $root }}
spec:
  authentication:
    type: scram-sha-512
  authorization:
    type: simple
    acls:
      {{- range $key := $u.write }}
      {{- if include "stockpipe.topicRendered" (list $root $key) }}
      - resource: {type: topic, name: {{ (index $topics $key).name | quote }}, patternType: literal}
        operations: [Write, Describe]
      {{- end }}
      {{- end }}
      {{- range $key := $u.read }}
      {{- if include "stockpipe.topicRendered" (list $root $key) }}
      - resource: {type: topic, name: {{ (index $topics $key).name | quote }}, patternType: literal}
        operations: [Read, Describe, DescribeConfigs]
      {{- end }}
      {{- end }}
      {{- range $key := $u.describe }}
      {{- if include "stockpipe.topicRendered" (list $root $key) }}
      # End offsets only (e.g. the consumer's lag), never the records.
      - resource: {type: topic, name: {{ (index $topics $key).name | quote }}, patternType: literal}
        operations: [Describe]
      {{- end }}
      {{- end }}
      {{- range $group := $u.describeGroups }}
      # Committed offsets only: no Read, so it can never join (and disturb) the group.
      - resource: {type: group, name: {{ tpl $group $root | quote }}, patternType: literal}
        operations: [Describe]
      {{- end }}
      {{- range $g := $u.groups }}
      - resource: {type: group, name: {{ tpl $g.name $root | quote }}, patternType: {{ $g.patternType }}}
        operations: [Read, Describe]
      {{- end }}
      {{- with $u.extraAcls }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
{{- end }}
{{- end }}
