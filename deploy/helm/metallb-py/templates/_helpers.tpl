{{/*
Names, labels and the image, shared by the templates.
*/}}

{{/* The prefix of the cluster-wide objects' names: the release name unless fullnameOverride. */}}
{{- define "metallb-py.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels of a component: the same as deploy/*.yaml, so a kustomize install can be taken over by the
chart (a workload's selector cannot change). Call with (dict "component" "controller").
*/}}
{{- define "metallb-py.selectorLabels" -}}
app.kubernetes.io/name: metallb-py
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Every object's labels. Call with (dict "ctx" $ "component" "controller"). */}}
{{- define "metallb-py.labels" -}}
{{ include "metallb-py.selectorLabels" . }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "metallb-py.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* The arguments both components take alike. Call with (dict "ctx" $ "values" .Values.controller). */}}
{{- define "metallb-py.commonArgs" -}}
- --log-level={{ .values.logLevel | default .ctx.Values.logLevel }}
{{- with .ctx.Values.loadBalancerClass }}
- --lb-class={{ . }}
{{- end }}
{{- if .ctx.Values.strict }}
- --strict
{{- end }}
{{- end -}}

{{/* Pod annotations: the scrape annotations, then the user's. Call with (dict "ctx" $ "values" ... "port" N). */}}
{{- define "metallb-py.podAnnotations" -}}
{{- $annotations := dict -}}
{{- if and .ctx.Values.metrics.enabled .ctx.Values.metrics.scrapeAnnotations -}}
{{- $_ := set $annotations "prometheus.io/scrape" "true" -}}
{{- $_ := set $annotations "prometheus.io/port" (toString .port) -}}
{{- end -}}
{{- $annotations = merge (deepCopy .values.podAnnotations) $annotations -}}
{{- if $annotations }}
annotations:
  {{- toYaml $annotations | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* Does the mode include layer 2 / BGP? */}}
{{- define "metallb-py.layer2" -}}
{{- if has .Values.mode (list "layer2" "both") }}true{{ end -}}
{{- end -}}
{{- define "metallb-py.bgp" -}}
{{- if has .Values.mode (list "bgp" "both") }}true{{ end -}}
{{- end -}}
