{{/* The chart name, or nameOverride. */}}
{{- define "kubedispatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object name: fullnameOverride, else the release name when it contains the chart name, else
<release>-<chart>. Release "kubedispatch" gives deploy/'s names. At most 40 characters, so that the longest suffix
(-cluster-auth-secrets) keeps names within 63.
*/}}
{{- define "kubedispatch.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := include "kubedispatch.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "kubedispatch.labels" -}}
app.kubernetes.io/name: {{ include "kubedispatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: kubedispatch
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of the dispatcher's pods. */}}
{{- define "kubedispatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubedispatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: dispatcher
{{- end }}

{{/* The dispatcher's ServiceAccount. */}}
{{- define "kubedispatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-dispatcher" (include "kubedispatch.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The subject that every binding grants to. */}}
{{- define "kubedispatch.subjects" -}}
- kind: ServiceAccount
  name: {{ include "kubedispatch.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/* "true" when the dispatcher elects a leader; fails when replicas > 1 without leader election. */}}
{{- define "kubedispatch.leaderElect" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicas > 1 needs leaderElection.enabled: without it every replica dispatches" }}
{{- end }}
{{- .Values.leaderElection.enabled }}
{{- end }}

{{/* Fails on an RBAC mode the chart cannot render. */}}
{{- define "kubedispatch.rbacMode" -}}
{{- $mode := .Values.rbac.mode }}
{{- if not (has $mode (list "clusterWide" "namespaced")) }}
{{- fail (printf "rbac.mode %q: want clusterWide or namespaced" $mode) }}
{{- end }}
{{- if and (eq $mode "namespaced") (not .Values.watchNamespaces) }}
{{- fail "rbac.mode namespaced needs watchNamespaces: the dispatcher gets permissions only in those namespaces" }}
{{- end }}
{{- $mode }}
{{- end }}

{{/*
The rules of ClusterRole kubedispatch-manager (files/manager-role.yaml, a copy of deploy/rbac/role.yaml that
hack/generate.sh writes), or part of them: scope "all" gives every rule as it is; "cluster" the resources that exist
only cluster-wide (they cannot be granted by a Role), and rules without resources (non-resource URLs); "namespace"
the others. A rule naming resources of both kinds is split.
*/}}
{{- define "kubedispatch.managerRules" -}}
{{- $scope := .scope }}
{{- $rules := (.root.Files.Get "files/manager-role.yaml" | fromYaml).rules }}
{{- if not $rules }}
{{- fail "files/manager-role.yaml has no rules: run hack/generate.sh" }}
{{- end }}
{{- $clusterScoped := list "/namespaces" "authentication.k8s.io/tokenreviews" "authorization.k8s.io/subjectaccessreviews" "kubedispatch.io/clustertriggerauthentications" }}
{{- $out := list }}
{{- range $rule := $rules }}
{{- if eq $scope "all" }}
{{- $out = append $out $rule }}
{{- else if not $rule.resources }}
{{- if eq $scope "cluster" }}
{{- $out = append $out $rule }}
{{- end }}
{{- else }}
{{- $keep := list }}
{{- range $res := $rule.resources }}
{{- $cluster := false }}
{{- range $group := $rule.apiGroups }}
{{- if has (printf "%s/%s" $group (first (splitList "/" $res))) $clusterScoped }}
{{- $cluster = true }}
{{- end }}
{{- end }}
{{- if eq $cluster (eq $scope "cluster") }}
{{- $keep = append $keep $res }}
{{- end }}
{{- end }}
{{- if $keep }}
{{- $out = append $out (merge (dict "resources" $keep) (omit $rule "resources")) }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}
