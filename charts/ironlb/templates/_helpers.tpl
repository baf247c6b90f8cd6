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
A duration value of the chart in whole milliseconds, so templates can compare
two of them: include "ironlb.durationMs" "1m30s" gives 90000. A duration is
what the binaries' flags take and values.schema.json (definitions.duration)
lets through: whole numbers each with a unit ms, s, m or h ("500ms", "15s",
"2m", "1m30s"), or "0". A number is the deprecated spelling of the operator's
leader-election values, in seconds: 15 gives 15000.
*/}}
{{- define "ironlb.durationMs" -}}
{{- if kindIs "string" . -}}
{{- $ms := 0 -}}
{{- range regexFindAll "[0-9]+(ms|s|m|h)" . -1 -}}
{{- $unit := regexFind "[a-z]+$" . -}}
{{- /* Without its leading zeros: int64 would read "010" as octal. */ -}}
{{- $number := regexReplaceAll "^0+" (trimSuffix $unit .) "" | default "0" -}}
{{- $scale := get (dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000) $unit -}}
{{- $ms = add $ms (mul (int64 $number) $scale) -}}
{{- end -}}
{{- $ms -}}
{{- else -}}
{{- mul (int64 .) 1000 -}}
{{- end -}}
{{- end -}}

{{/*
A duration value as the binaries' flags take it: a string as written, a number
(deprecated seconds) as "<n>s". include "ironlb.duration" 15 gives "15s".
*/}}
{{- define "ironlb.duration" -}}
{{- if kindIs "string" . -}}{{ . }}{{- else -}}{{ int64 . }}s{{- end -}}
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
