{{/* Labels every object of this release carries. */}}
{{- define "ironlb.labels" -}}
app.kubernetes.io/name: ironlb
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: ironlb.selector (dict "root" . "component" "operator"). */}}
{{- define "ironlb.selector" -}}
app.kubernetes.io/name: ironlb
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ironlb.operatorName" -}}{{ .Release.Name }}-operator{{- end -}}

{{- define "ironlb.speakerName" -}}{{ .Release.Name }}-speaker{{- end -}}

{{/*
A duration value of the chart ("2s", "500ms", "1m30s": what values.schema.json
lets through) in whole milliseconds, so templates can compare two of them:
include "ironlb.durationMs" "1m30s" gives 90000.
*/}}
{{- define "ironlb.durationMs" -}}
{{- $ms := 0 -}}
{{- range regexFindAll "[0-9]+(ms|s|m)" . -1 -}}
{{- $number := regexFind "^[0-9]+" . -}}
{{- $unit := trimPrefix $number . -}}
{{- $scale := get (dict "ms" 1 "s" 1000 "m" 60000) $unit -}}
{{- $ms = add $ms (mul (int64 $number) $scale) -}}
{{- end -}}
{{- $ms -}}
{{- end -}}

{{/*
The PromQL label matchers of one component's targets in this release, as the
chart's ServiceMonitors scrape them: the job is the metrics Service's name.
include "ironlb.targets" (dict "root" . "component" "speaker")
*/}}
{{- define "ironlb.targets" -}}
job="{{ .root.Release.Name }}-{{ .component }}-metrics",namespace="{{ .root.Release.Namespace }}"
{{- end -}}

{{/* The labels of one alert: its severity, then metrics.prometheusRule.additionalAlertLabels. include "ironlb.alertLabels" (list "warning" $extra) */}}
{{- define "ironlb.alertLabels" -}}
severity: {{ index . 0 }}
{{- with index . 1 }}
{{ toYaml . }}
{{- end }}
{{- end -}}
