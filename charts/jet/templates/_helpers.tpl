{{/* Names: at most 63 characters (DNS labels); the StatefulSet's leaves room for "-NN". */}}
{{- define "jet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "jet.fullname" -}}
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

{{/* The headless Service: stable DNS names for the pods, gossip and raft. */}}
{{- define "jet.headless" -}}
{{- printf "%s-headless" (include "jet.fullname" .) }}
{{- end }}

{{- define "jet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "jet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "jet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "jet.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* <pod>.<headless>.<namespace>.svc.<domain> for pod ordinal .i */}}
{{- define "jet.podHost" -}}
{{- $ := .root }}
{{- printf "%s-%d.%s.%s.svc.%s" (include "jet.fullname" $) (int .i) (include "jet.headless" $) $.Release.Namespace $.Values.clusterDomain }}
{{- end }}

{{/* --seeds: every broker's gossip address (a broker skips its own). */}}
{{- define "jet.seeds" -}}
{{- $seeds := list }}
{{- range $i := until (int .Values.replicas) }}
{{- $seeds = append $seeds (printf "%s:%d" (include "jet.podHost" (dict "root" $ "i" $i)) (int $.Values.ports.gossip)) }}
{{- end }}
{{- join "," $seeds }}
{{- end }}

{{- define "jet.bootstrapExpect" -}}
{{- if .Values.cluster.bootstrapExpect }}{{ int .Values.cluster.bootstrapExpect }}{{ else }}{{ int .Values.replicas }}{{ end }}
{{- end }}

{{/* Kafka-style 22 characters; derived, so every broker and every upgrade agree. */}}
{{- define "jet.clusterId" -}}
{{- if .Values.cluster.id }}{{ .Values.cluster.id }}{{ else }}{{ printf "%s/%s" .Release.Namespace .Release.Name | sha256sum | trunc 22 }}{{ end }}
{{- end }}

{{/* The Secret holding the gossip key; empty when gossip is unencrypted. */}}
{{- define "jet.gossipSecret" -}}
{{- if .Values.gossipKey.existingSecret }}{{ .Values.gossipKey.existingSecret }}
{{- else if .Values.gossipKey.generate }}{{ printf "%s-gossip" (include "jet.fullname" .) }}
{{- end }}
{{- end }}

{{/* A server.properties value: whole numbers as integers (YAML numbers arrive as floats). */}}
{{- define "jet.propertyValue" -}}
{{- if and (kindIs "float64" .) (eq . (float64 (int64 .))) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- end }}

{{/* Broker .i's advertised EXTERNAL host:port as NOTES.txt shows it: external.addresses[i],
     <pod>.<external.domain>, or the node's IP (.shell: as a kubectl command). */}}
{{- define "jet.externalAddress" -}}
{{- $ := .root }}
{{- $ext := $.Values.external }}
{{- $pod := printf "%s-%d" (include "jet.fullname" $) (int .i) }}
{{- $port := int $ext.port }}
{{- if eq $ext.type "NodePort" }}{{ $port = add (int $ext.nodePortBase) (int .i) }}{{ end }}
{{- if $ext.addresses }}
{{- $host := index $ext.addresses (int .i) }}
{{- if contains ":" $host }}{{ $host = printf "[%s]" $host }}{{ end }}
{{- printf "%s:%d" $host (int $port) }}
{{- else if $ext.domain }}{{ printf "%s.%s:%d" $pod $ext.domain (int $port) }}
{{- else if .shell }}{{ printf "\"$(kubectl get pod %s -n %s -o jsonpath='{.status.hostIP}'):%d\"" $pod $.Release.Namespace (int $port) }}
{{- else }}{{ printf "<IP of the node %s runs on>:%d" $pod (int $port) }}
{{- end }}
{{- end }}

{{/* The in-cluster name of broker 0's external Service: the EXTERNAL listener from a pod. */}}
{{- define "jet.externalService0" -}}
{{- printf "%s-0-external.%s.svc.%s:%d" (include "jet.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.external.port) }}
{{- end }}
