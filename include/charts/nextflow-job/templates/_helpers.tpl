{{/* Where the config files are mounted in both containers. */}}
{{- define "nextflow-job.configDir" -}}/etc/hatchway{{- end -}}

{{- define "nextflow-job.name" -}}{{ .Chart.Name }}{{- end -}}

{{/* Objects are named after the release (JobNames.release): one release, one job. */}}
{{- define "nextflow-job.fullname" -}}{{ .Release.Name | trunc 53 | trimSuffix "-" }}{{- end -}}

{{- define "nextflow-job.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nextflow-job.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "nextflow-job.labels" -}}
{{ include "nextflow-job.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hatchway
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
hatchway.io/job-id: {{ required "jobId is required (the request's pipeline_param.id)" .Values.jobId | quote }}
hatchway.io/run-name: {{ required "runName is required (<namespace>-<job id lowercased>)" .Values.runName | quote }}
{{- end -}}

{{- define "nextflow-job.image" -}}
{{- printf "%s:%s" (required (printf "images.%s.repository is required" .name) .image.repository) (required (printf "images.%s.tag is required" .name) (toString .image.tag)) -}}
{{- end -}}

{{/* env entries read from an existing Secret; `optional` lets the Secret leave a key out. */}}
{{- define "nextflow-job.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret | quote }}
      key: {{ .key | quote }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end -}}
