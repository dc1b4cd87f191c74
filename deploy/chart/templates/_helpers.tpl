{{/* Chart name, truncated to a DNS label. */}}
{{- define "ferry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified name: the release name when it already contains the chart name. */}}
{{- define "ferry.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ferry.serviceAccountName" -}}
{{- printf "%s-operator" (include "ferry.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ferry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ferry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller-manager
{{- end -}}

{{- define "ferry.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ferry.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ferry
{{- end -}}

{{- define "ferry.image" -}}
{{- $img := .Values.controller.manager.image -}}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion (toString (default "" $img.tag))) -}}
{{- end -}}

{{/* The --log-level value: pino levels, plus VSO's debug-extended (mapped to trace). */}}
{{- define "ferry.logLevel" -}}
{{- $level := toString .Values.controller.manager.logging.level -}}
{{- if eq $level "debug-extended" -}}
trace
{{- else if has $level (list "trace" "debug" "info" "warn" "error" "fatal" "silent") -}}
{{- $level -}}
{{- else -}}
{{- fail (printf "controller.manager.logging.level: %q is not one of trace, debug-extended, debug, info, warn, error, fatal, silent" $level) -}}
{{- end -}}
{{- end -}}

{{/* A positive integer value, or nothing when the value is null or ""; fails on anything else. */}}
{{- define "ferry.positiveInt" -}}
{{- $name := index . 0 -}}
{{- $v := index . 1 -}}
{{- if and (not (kindIs "invalid" $v)) (ne (toString $v) "") -}}
{{- if and (kindIs "string" $v) (not (regexMatch "^[0-9]+$" $v)) -}}
{{- fail (printf "%s must be a positive integer, got %q" $name $v) -}}
{{- end -}}
{{- $n := int64 $v -}}
{{- if or (lt $n 1) (and (kindIs "float64" $v) (ne (float64 $n) $v)) -}}
{{- fail (printf "%s must be a positive integer, got %v" $name $v) -}}
{{- end -}}
{{- $n -}}
{{- end -}}
{{- end -}}
