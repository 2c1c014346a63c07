{{/* The labels every object carries; (list $ "component"). The kustomize manifests carry the
first two only; the rest are Helm's. */}}
{{- define "nodeping.labels" -}}
{{- $ := index . 0 -}}
{{- $component := index . 1 -}}
app.kubernetes.io/name: nodeping
{{- with $component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
helm.sh/chart: {{ printf "%s-%s" $.Chart.Name $.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ $.Release.Service }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/version: {{ $.Chart.AppVersion | quote }}
{{- end }}

{{/* The selector of a component's pods; it never changes between releases. */}}
{{- define "nodeping.selector" -}}
app.kubernetes.io/name: nodeping
app.kubernetes.io/component: {{ . }}
{{- end }}

{{- define "nodeping.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
{{- end }}

{{/* The agent's arguments, as a YAML list: the fixed ones, then every flag whose value is set
(not null, "", 0 or false), in the order of values.yaml, then extraArgs. */}}
{{- define "nodeping.agentArgs" -}}
{{- $a := .Values.agent -}}
{{- $args := list (printf "--node-name=$(%s)" $a.nodeNameEnv) (printf "--nodes-file=%s" $a.nodesFile) (printf "--textfile-dir=%s" $a.textfile.directory) -}}
{{- $flags := list
  (list "interval" $a.interval)
  (list "grace" $a.grace)
  (list "max-external-targets" $a.maxExternalTargets)
  (list "icmp" (ternary "" "false" $a.icmp.enabled))
  (list "icmp-count" $a.icmp.count)
  (list "icmp-interval" $a.icmp.interval)
  (list "icmp-timeout" $a.icmp.timeout)
  (list "icmp-size" $a.icmp.size)
  (list "icmp-dont-fragment" (ternary "true" "" $a.icmp.dontFragment))
  (list "icmp-engine" $a.icmp.engine)
  (list "mtu" $a.mtu.size)
  (list "mtu-count" $a.mtu.count)
  (list "mtu-every" $a.mtu.every)
  (list "tcp-port" $a.tcp.port)
  (list "tcp-count" $a.tcp.count)
  (list "tcp-every" $a.tcp.every)
  (list "udp-port" $a.udp.port)
  (list "udp-count" $a.udp.count)
  (list "udp-every" $a.udp.every)
  (list "udp-responder-rate" $a.udp.responderRate)
  (list "dns-names" (join "," $a.dns.names))
  (list "dns-resolvers" (join "," $a.dns.resolvers))
  (list "dns-timeout" $a.dns.timeout)
  (list "dns-every" $a.dns.every)
  (list "full-mesh-max" $a.plan.fullMeshMax)
  (list "subset-peers" $a.plan.subsetPeers)
  (list "max-zones" $a.plan.maxZones)
  (list "log-level" $a.logLevel)
  (list "log-format" $a.logFormat)
  (list "compat" $a.compat)
  (list "rtt-detail" (ternary "true" "" $a.rttDetail))
  (list "textfile-name" $a.textfile.name)
-}}
{{- range $flags -}}
{{- $v := index . 1 -}}
{{- if not (empty $v) -}}
{{- if kindIs "float64" $v }}{{ $v = int64 $v }}{{ end -}}
{{- $args = append $args (printf "--%s=%v" (index . 0) $v) -}}
{{- end -}}
{{- end -}}
{{- toYaml (concat $args (default list $a.extraArgs)) -}}
{{- end }}

{{/* "true" when the controller gets external targets: enabled, or a non-empty list. */}}
{{- define "nodeping.externalTargets" -}}
{{- $e := .Values.controller.externalTargets -}}
{{- if or $e.enabled (not (empty $e.targets)) }}true{{ end -}}
{{- end }}
