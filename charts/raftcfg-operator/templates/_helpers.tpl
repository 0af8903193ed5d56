{{/*
The chart name, or nameOverride. Kubernetes names are at most 63
characters (DNS labels).
*/}}
{{- define "raftcfg-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object's name: fullnameOverride, or `<release>-<chart>`,
or just the release name when it already contains the chart name.
*/}}
{{- define "raftcfg-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
`<chart>-<version>` for the helm.sh/chart label ("+" is not allowed in
label values).
*/}}
{{- define "raftcfg-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object the chart creates.
*/}}
{{- define "raftcfg-operator.labels" -}}
helm.sh/chart: {{ include "raftcfg-operator.chart" . }}
{{ include "raftcfg-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: raftcfg
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The labels that select the operator pods. Part of the Deployment's
immutable selector: never add to them.
*/}}
{{- define "raftcfg-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "raftcfg-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The operator's ServiceAccount.
*/}}
{{- define "raftcfg-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "raftcfg-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The operator image, tagged with image.tag or the chart's appVersion.
*/}}
{{- define "raftcfg-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The RBAC rules the operator needs on RaftClusters and the objects it owns,
wherever it watches them: a ClusterRole (all namespaces) or a Role (one
namespace). Nothing more: it never updates a RaftCluster's spec, never
creates pods (the StatefulSet does) and changes only one label of theirs,
only deletes the volumes of members it removed, and reads Secrets by name,
never listing them.
*/}}
{{- define "raftcfg-operator.watchRules" -}}
# Exactly the calls the operator makes. RaftClusters are watched and read
# fresh before each reconcile; status is written with server-side apply.
- apiGroups: ["raftcfg.io"]
  resources: ["raftclusters"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["raftcfg.io"]
  resources: ["raftclusters/status"]
  verbs: ["patch"]
# Owned StatefulSets are watched and read; server-side apply creating an
# object needs create as well as patch.
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["create", "patch"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["create", "patch"]
# The cluster's NetworkPolicy, deleted when spec.networkPolicy.enabled is
# turned off.
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["create", "patch", "delete"]
# Pods are listed for health and identity, watched so that a pod that
# starts, stops or turns ready is seen at once, patched to set the label
# raftcfg.io/serving (a member leaving leaves the client Service first),
# and deleted one at a time to roll them onto a new image or configuration.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "patch", "delete"]
# Volume claims are listed (and watched, so a claim deleted by hand is seen
# at once) so that nothing is bootstrapped next to an
# earlier cluster's data, and one holding a removed member's data is deleted
# so that it can never rejoin with stale data.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["list", "watch", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# Only for clusters with spec.tls or spec.auth: their Secrets (<name>-ca,
# <name>-tls, <name>-operator-tls, <name>-root) are read by name and
# written with server-side apply. RBAC cannot limit this to those names:
# they differ per cluster.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch"]
# Only with spec.tls.issuerRef: the cert-manager Certificates <name>-members
# and <name>-operator, written with server-side apply.
- apiGroups: ["cert-manager.io"]
  resources: ["certificates"]
  verbs: ["create", "patch"]
{{- end }}

{{/*
The namespace of the RaftCluster the chart creates (cluster.create):
cluster.namespace, else watchNamespace, else the release namespace.
*/}}
{{- define "raftcfg-operator.clusterNamespace" -}}
{{- .Values.cluster.namespace | default .Values.watchNamespace | default .Release.Namespace }}
{{- end }}
