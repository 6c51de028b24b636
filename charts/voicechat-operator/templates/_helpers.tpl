{{- define "voicechat-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "voicechat-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "voicechat-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "voicechat-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "voicechat-operator.labels" -}}
{{ include "voicechat-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The rules the operator needs in each namespace it reconciles. */}}
{{- define "voicechat-operator.namespacedRules" -}}
  # The stacks themselves.
  - apiGroups: [voicechat.dev]
    resources: [voicechatstacks]
    verbs: [get, list, watch]
  # Conditions, observedGeneration and the resolved profile (server-side apply).
  - apiGroups: [voicechat.dev]
    resources: [voicechatstacks/status]
    verbs: [get, patch]
  # Children the operator applies (server-side apply: patch, and create
  # when the child does not exist yet), watches (its cache: what to apply
  # is decided from it, never by a get) and deletes when the spec no
  # longer wants them (Ollama off, Redis external, replicas 1);
  # autoscalers of the chat and voice pods among them.
  - apiGroups: [autoscaling]
    resources: [horizontalpodautoscalers]
    verbs: [list, watch, create, patch, delete]
  - apiGroups: [apps]
    resources: [deployments]
    verbs: [list, watch, create, patch, delete]
  - apiGroups: [""]
    resources: [services, configmaps]
    verbs: [list, watch, create, patch, delete]
  - apiGroups: [policy]
    resources: [poddisruptionbudgets]
    verbs: [list, watch, create, patch, delete]
  - apiGroups: [networking.k8s.io]
    resources: [networkpolicies]
    verbs: [list, watch, create, patch, delete]
  # The generated JWT Secret: watched (its value is kept across
  # reconciles; one not cached yet is read with a get, as is a Secret the
  # stack names), applied; never deleted (garbage collection does that
  # with the stack). Kubernetes RBAC cannot narrow a watch to labelled
  # Secrets, so this is every Secret's read access (in every namespace, or
  # in the watchNamespaces only): the reason the operator runs in its own
  # namespace with its own ServiceAccount.
  - apiGroups: [""]
    resources: [secrets]
    verbs: [get, list, watch, create, patch]
  # The models loader Jobs: applied, watched (their end makes the voice
  # pods), deleted when the model list changes or a Job gave up (a new one
  # is started).
  - apiGroups: [batch]
    resources: [jobs]
    verbs: [list, watch, create, patch, delete]
  # A running loader's progress for the stack's status: the tail of its log.
  - apiGroups: [""]
    resources: [pods/log]
    verbs: [get]
  # The pods' own ServiceAccount (no token automounted), Redis' volume
  # claim and the namespace's models cache: applied and watched (the
  # cache); claims are never deleted (they hold data).
  - apiGroups: [""]
    resources: [serviceaccounts, persistentvolumeclaims]
    verbs: [list, watch, create, patch]
  # Why a part or a loader is not ready, for the stack's status: the pods
  # the operator labelled, watched (the cache keeps their status, not their
  # spec). Watching shows pod specs, env values included; the operator's
  # own pods carry their secrets as mounted files, never as env values.
  - apiGroups: [""]
    resources: [pods]
    verbs: [list, watch]
  # Events on the stacks (invalid spec, errors, Ready flips); patch updates
  # a repeated event's count.
  - apiGroups: [events.k8s.io]
    resources: [events]
    verbs: [create, patch]
{{- end -}}
