{{/* The chart name, overridable with nameOverride. */}}
{{- define "portager.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The fully qualified app name: the release name, or release-chart when they differ. */}}
{{- define "portager.fullname" -}}
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

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "portager.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "portager.labels" -}}
helm.sh/chart: {{ include "portager.chart" . }}
{{ include "portager.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: portager
{{- end }}

{{/*
Labels the Deployment, Service, PDB and NetworkPolicy select pods by: upstream Portager v0.5's
exactly. A Deployment's selector cannot change, so `helm upgrade` from an upstream release only
works with the same set, and `kubectl get pods -l control-plane=controller-manager` keeps working.
*/}}
{{- define "portager.selectorLabels" -}}
app.kubernetes.io/name: {{ include "portager.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: controller-manager
{{- end }}

{{/* Name of the Deployment, PDB and NetworkPolicy, as upstream: <fullname>-controller-manager. */}}
{{- define "portager.managerName" -}}
{{- printf "%s-controller-manager" (include "portager.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The shard count: 1 (unsharded: one Deployment, one Lease) unless `shards` is 2 or more. */}}
{{- define "portager.shards" -}}
{{- max 1 (int (.Values.shards | default 1)) }}
{{- end }}

{{/*
The Deployments to render, as a JSON list; each entry:
  suffix   appended to portager.managerName ("" for the unsharded one: upstream's name and selector)
  shard    the hash shard index, or -1 (shards: 1)
  group    the label shard ("main", or one of labelShards.values), or "" without labelShards
  selector its --watch-label-selector, or ""
  lease    the Lease it elects on (src/controller/shard.ts names it the same way)
Unsharded: one entry. shards: N: one per index. labelShards: the main one and one per value,
each split N ways when shards: N.
*/}}
{{- define "portager.deployments" -}}
{{- $n := int (include "portager.shards" .) }}
{{- $key := .Values.labelShards.key }}
{{- $groups := list (dict "group" "" "selector" "") }}
{{- if .Values.labelShards.values }}
{{- $groups = list (dict "group" "main" "selector" (printf "!%s" $key)) }}
{{- range .Values.labelShards.values }}
{{- $groups = append $groups (dict "group" . "selector" (printf "%s in (%s)" $key .)) }}
{{- end }}
{{- end }}
{{- $out := list }}
{{- range $g := $groups }}
{{- $base := $.Values.leaderElection.leaseName }}
{{- if $g.selector }}{{ $base = printf "%s-%s" $base (sha256sum $g.selector | trunc 8) }}{{ end }}
{{- $prefix := ternary (printf "-%s" $g.group) "" (ne $g.group "") }}
{{- if gt $n 1 }}
{{- range $i := until $n }}
{{- $out = append $out (dict "suffix" (printf "%s-shard-%d" $prefix $i) "shard" $i "group" $g.group "selector" $g.selector "lease" (printf "%s-shard-%d" $base $i)) }}
{{- end }}
{{- else }}
{{- $lease := ternary (printf "%s-shard-0" $base) $base (ne $g.selector "") }}
{{- $out = append $out (dict "suffix" $prefix "shard" -1 "group" $g.group "selector" $g.selector "lease" $lease) }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* "true" when the shard Lease gate runs (hash or label shards): the Role may list Leases. */}}
{{- define "portager.gated" -}}
{{- if or (gt (int (include "portager.shards" .)) 1) .Values.labelShards.values }}true{{ end }}
{{- end }}

{{/* The pod labels that tell a Deployment's pods from the other shards'. */}}
{{- define "portager.shardLabels" -}}
{{- if ge (int .shard) 0 }}
portager.portager.io/shard: {{ .shard | toString | quote }}
{{- end }}
{{- if .group }}
portager.portager.io/label-shard: {{ .group | quote }}
{{- end }}
{{- end }}

{{/* "true" when the Deployment passes controller-runtime's flags (upstream's), else "". */}}
{{- define "portager.upstreamFlags" -}}
{{- if eq (toString .Values.runtimeFlags) "upstream" }}true{{ end }}
{{- end }}

{{/* "https" when /metrics is served over TLS with TokenReview/SubjectAccessReview, else "http". */}}
{{- define "portager.metricsScheme" -}}
{{- if and (include "portager.upstreamFlags" .) .Values.metrics.secure }}https{{ else }}http{{ end }}
{{- end }}

{{/* The metrics port's name, on the container and the Service: "https" as upstream, or "http-metrics". */}}
{{- define "portager.metricsPortName" -}}
{{- if eq (include "portager.metricsScheme" .) "https" }}https{{ else }}http-metrics{{ end }}
{{- end }}

{{/* The port the probes use: its own "health" port with upstream's flags, else the metrics port. */}}
{{- define "portager.probePort" -}}
{{- if include "portager.upstreamFlags" . }}health{{ else }}{{ include "portager.metricsPortName" . }}{{ end }}
{{- end }}

{{/* Namespaces whose Secrets the operator may read through a Role each (empty list: none). */}}
{{- define "portager.secretNamespaces" -}}
{{- $list := .Values.tenancy.secretNamespaces | default .Values.watchNamespaces | default list }}
{{- toJson (uniq $list) }}
{{- end }}

{{/*
Whether to render the release Namespace (upstream's chart always does). "auto" (null): only when
this release already owns it — a release installed by upstream's chart lists the Namespace, and an
upgrade that dropped it would make Helm delete the namespace and everything in it.
*/}}
{{- define "portager.renderNamespace" -}}
{{- $create := .Values.namespace.create }}
{{- if kindIs "invalid" $create }}
{{- $ns := lookup "v1" "Namespace" "" .Release.Namespace }}
{{- $annotations := dig "metadata" "annotations" (dict) $ns }}
{{- if and (eq (get $annotations "meta.helm.sh/release-name") .Release.Name) (eq (get $annotations "meta.helm.sh/release-namespace") .Release.Namespace) }}true{{ end }}
{{- else if $create }}true{{ end }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "portager.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "portager.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The container image: repository:tag, or repository@digest when a digest is given. */}}
{{- define "portager.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Path of the CA bundle file inside the container. */}}
{{- define "portager.caBundle.path" -}}
{{- printf "%s/%s" (trimSuffix "/" .Values.caBundle.mountPath) .Values.caBundle.key }}
{{- end }}

{{/* Name of the Secret the chart creates from aws.credentials. */}}
{{- define "portager.awsSecretName" -}}
{{- printf "%s-aws" (include "portager.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Refuse configurations that would render but not work. Failing at install time beats an
x509 error at the first sync, or two replicas syncing the same ImageSyncs at once.
*/}}
{{- define "portager.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled=true: without it every replica would sync every ImageSync." }}
{{- end }}
{{- if and (gt (int (include "portager.shards" .)) 1) (not .Values.leaderElection.enabled) }}
{{- fail "shards > 1 needs leaderElection.enabled=true: each shard elects its leader on its own Lease (<leaseName>-shard-<i>)." }}
{{- end }}
{{- if and .Values.labelShards.values (not .Values.leaderElection.enabled) }}
{{- fail "labelShards.values needs leaderElection.enabled=true: each label shard elects its leader on its own Lease." }}
{{- end }}
{{- if and .Values.aws.credentials.enabled .Values.aws.existingSecret }}
{{- fail "Set either aws.credentials.enabled or aws.existingSecret, not both." }}
{{- end }}
{{- if .Values.aws.credentials.enabled }}
{{- if or (not .Values.aws.credentials.accessKeyId) (not .Values.aws.credentials.secretAccessKey) }}
{{- fail "aws.credentials.enabled needs aws.credentials.accessKeyId and aws.credentials.secretAccessKey (or use aws.existingSecret, or IRSA through serviceAccount.annotations)." }}
{{- end }}
{{- end }}
{{- if not (has (toString .Values.runtimeFlags) (list "legacy" "upstream")) }}
{{- fail (printf "runtimeFlags must be \"legacy\" or \"upstream\", not %q" (toString .Values.runtimeFlags)) }}
{{- end }}
{{- if hasSuffix "jarodr47/portager" .Values.image.repository }}
{{- fail (printf "image.repository is upstream's image (%s), whose binary does not take this chart's flags: drop image.repository from your values (default ghcr.io/portager/portager) or set this project's image." .Values.image.repository) }}
{{- end }}
{{- if and .Values.webhook.enabled (not .Values.webhook.existingSecret) }}
{{- fail "webhook.enabled needs webhook.existingSecret: a Secret with the shared secret senders authenticate with (key webhook.secretKey)." }}
{{- end }}
{{- if and .Values.webhook.enabled (eq (int .Values.webhook.port) (int .Values.metrics.port)) }}
{{- fail "webhook.port must differ from metrics.port." }}
{{- end }}
{{- if and .Values.prometheusRule.enabled (not .Values.metrics.enabled) }}
{{- fail "prometheusRule.enabled needs metrics.enabled=true: the alerts read the operator's metrics." }}
{{- end }}
{{- if .Values.caBundle.enabled }}
{{- if not (hasPrefix "/etc/portager/" (printf "%s/" (trimSuffix "/" .Values.caBundle.mountPath))) }}
{{- fail (printf "caBundle.mountPath must be /etc/portager or below it, not %q: the image's binary may read only /etc/portager and /var/run/secrets (docs/DEPLOY.md, Permissions)." .Values.caBundle.mountPath) }}
{{- end }}
{{- $sources := list }}
{{- if .Values.caBundle.existingSecret }}{{ $sources = append $sources "existingSecret" }}{{ end }}
{{- if .Values.caBundle.existingConfigMap }}{{ $sources = append $sources "existingConfigMap" }}{{ end }}
{{- if .Values.caBundle.inline }}{{ $sources = append $sources "inline" }}{{ end }}
{{- if ne (len $sources) 1 }}
{{- fail (printf "caBundle.enabled needs exactly one of caBundle.existingSecret, caBundle.existingConfigMap or caBundle.inline; %d set%s" (len $sources) (ternary "" (printf ": %s" (join ", " $sources)) (eq (len $sources) 0))) }}
{{- end }}
{{- if not (has .Values.caBundle.mode (list "append" "replace")) }}
{{- fail (printf "caBundle.mode must be \"append\" or \"replace\", not %q" (toString .Values.caBundle.mode)) }}
{{- end }}
{{- end }}
{{- end }}
