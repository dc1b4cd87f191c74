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

{{/* Labels every object of the release carries, besides its selector labels. */}}
{{- define "ferry.chartLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ferry
{{- end -}}

{{- define "ferry.labels" -}}
{{ include "ferry.selectorLabels" . }}
{{ include "ferry.chartLabels" . }}
{{- end -}}

{{- define "ferry.image" -}}
{{- $img := .Values.controller.manager.image -}}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion (toString (default "" $img.tag))) -}}
{{- end -}}

{{/*
A --log-level value: pino levels, plus VSO's debug-extended (mapped to trace).
Called with (list "<value name>" <value>).
*/}}
{{- define "ferry.pinoLevel" -}}
{{- $name := index . 0 -}}
{{- $level := toString (index . 1) -}}
{{- if eq $level "debug-extended" -}}
trace
{{- else if has $level (list "trace" "debug" "info" "warn" "error" "fatal" "silent") -}}
{{- $level -}}
{{- else -}}
{{- fail (printf "%s: %q is not one of trace, debug-extended, debug, info, warn, error, fatal, silent" $name $level) -}}
{{- end -}}
{{- end -}}

{{- define "ferry.logLevel" -}}
{{- include "ferry.pinoLevel" (list "controller.manager.logging.level" .Values.controller.manager.logging.level) -}}
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

{{/* ---------------------------------------------------------------------------------------
The CSI node driver (csi.enabled). */}}

{{- define "ferry.csi.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ferry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: csi-driver
{{- end -}}

{{- define "ferry.csi.labels" -}}
{{ include "ferry.csi.selectorLabels" . }}
{{ include "ferry.chartLabels" . }}
{{- end -}}

{{- define "ferry.csi.serviceAccountName" -}}
{{- printf "%s-csi" (include "ferry.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ferry.csi.clusterRoleName" -}}
{{- printf "%s-csi-driver-role" (include "ferry.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The driver name: the CSIDriver object's name, the pod token audience, --driver-name and the
kubelet plugin directory. A CSIDriver name is a DNS-1123 subdomain of at most 63 characters.
*/}}
{{- define "ferry.csi.driverName" -}}
{{- $name := toString .Values.csi.driver.name -}}
{{- if or (gt (len $name) 63) (not (regexMatch "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$" $name)) -}}
{{- fail (printf "csi.driver.name: %q is not a DNS subdomain of at most 63 characters" $name) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{/* The driver image: csi.driver.image, each empty field taken from controller.manager.image. */}}
{{- define "ferry.csi.driverImage" -}}
{{- $img := .Values.csi.driver.image -}}
{{- $ctl := .Values.controller.manager.image -}}
{{- $repo := default $ctl.repository $img.repository -}}
{{- $tag := default (default .Chart.AppVersion (toString (default "" $ctl.tag))) (toString (default "" $img.tag)) -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}

{{/* repository:tag of a sidecar image value. */}}
{{- define "ferry.imageRef" -}}
{{- printf "%s:%s" .repository (toString .tag) -}}
{{- end -}}

{{/*
The method part of a VaultAuth spec (namespace, method, mount, the method's block, params, headers)
from a values block shaped like defaultAuthMethod. Called with (dict "name" <values path> "v" <block>
"serviceAccount" <default ServiceAccount of the kubernetes method>). With an enabled
vaultAuthGlobalRef the role may come from the global.
*/}}
{{- define "ferry.vaultAuthMethod" -}}
{{- $name := .name -}}
{{- $v := .v -}}
{{- $global := dig "vaultAuthGlobalRef" "enabled" false $v -}}
{{- $methods := list "kubernetes" "jwt" "appRole" "aws" "gcp" -}}
{{- if not (has $v.method $methods) -}}
{{- fail (printf "%s.method: %q is not one of %s" $name $v.method (join ", " $methods)) -}}
{{- end -}}
{{- with $v.namespace }}
namespace: {{ . | quote }}
{{- end }}
method: {{ $v.method }}
mount: {{ required (printf "%s.mount is required" $name) $v.mount | quote }}
{{- if eq $v.method "kubernetes" }}
{{- with $v.kubernetes }}
kubernetes:
  {{- if or .role (not $global) }}
  role: {{ required (printf "%s.kubernetes.role is required" $name) .role | quote }}
  {{- end }}
  serviceAccount: {{ default $.serviceAccount .serviceAccount | quote }}
  {{- with .tokenAudiences }}
  audiences:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .tokenExpirationSeconds }}
  tokenExpirationSeconds: {{ int64 . }}
  {{- end }}
{{- end }}
{{- else if eq $v.method "jwt" }}
{{- with $v.jwt }}
jwt:
  {{- if or .role (not $global) }}
  role: {{ required (printf "%s.jwt.role is required" $name) .role | quote }}
  {{- end }}
  {{- if .secretRef }}
  secretRef: {{ .secretRef | quote }}
  {{- else }}
  serviceAccount: {{ default "default" .serviceAccount | quote }}
  {{- with .tokenAudiences }}
  audiences:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- end }}
{{- end }}
{{- else if eq $v.method "appRole" }}
{{- with $v.appRole }}
appRole:
  roleId: {{ required (printf "%s.appRole.roleId is required" $name) .roleId | quote }}
  secretRef: {{ required (printf "%s.appRole.secretRef is required" $name) .secretRef | quote }}
{{- end }}
{{- else if eq $v.method "aws" }}
aws:
  {{- range $k := list "role" "region" "headerValue" "sessionName" "stsEndpoint" "iamEndpoint" "secretRef" "irsaServiceAccount" }}
  {{- with index $v.aws $k }}
  {{ $k }}: {{ . | quote }}
  {{- end }}
  {{- end }}
{{- else if eq $v.method "gcp" }}
gcp:
  {{- range $k := list "role" "workloadIdentityServiceAccount" "region" "clusterName" "projectID" }}
  {{- with index $v.gcp $k }}
  {{ $k }}: {{ . | quote }}
  {{- end }}
  {{- end }}
{{- end }}
{{- with $v.params }}
params:
  {{- range $k, $val := . }}
  {{ $k | quote }}: {{ $val | toString | quote }}
  {{- end }}
{{- end }}
{{- with $v.headers }}
headers:
  {{- range $k, $val := . }}
  {{ $k | quote }}: {{ $val | toString | quote }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* A positive number (qps may be fractional), or nothing when null or ""; fails on anything else. */}}
{{- define "ferry.positiveNumber" -}}
{{- $name := index . 0 -}}
{{- $v := index . 1 -}}
{{- if and (not (kindIs "invalid" $v)) (ne (toString $v) "") -}}
{{- if not (regexMatch "^[0-9]+(\\.[0-9]+)?$" (toString $v)) -}}
{{- fail (printf "%s must be a positive number, got %v" $name $v) -}}
{{- end -}}
{{- if le (float64 $v) 0.0 -}}
{{- fail (printf "%s must be a positive number, got %v" $name $v) -}}
{{- end -}}
{{- toString $v -}}
{{- end -}}
{{- end -}}

