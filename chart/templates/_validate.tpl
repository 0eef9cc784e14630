{{/* Every render-time check of the chart, in one place: bad combinations of values are refused
before anything is rendered, each with what is wrong and what to set instead. deployment.yaml
(rendered in every release) includes it first; a check needing a new value goes here. */}}
{{- define "triton.validate" -}}
{{- $v := .Values }}
{{- if not (index .Chart.Annotations "ngcRelease") }}
{{- fail "Chart.yaml has no ngcRelease annotation: name the NGC release this chart ships" }}
{{- end }}
{{- if and (not $v.serviceAccount.create) (not $v.serviceAccount.name) }}
{{- fail "serviceAccount.name is required when serviceAccount.create is false: name an existing ServiceAccount" }}
{{- end }}
{{- $grace := int $v.terminationGracePeriodSeconds }}
{{- $needed := add $v.drainSeconds $v.server.exitTimeoutSeconds }}
{{- if lt $grace (int $needed) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) is shorter than drainSeconds + server.exitTimeoutSeconds (%d): in-flight requests would be cut off; raise terminationGracePeriodSeconds to at least %d" $grace (int $needed) (int $needed)) }}
{{- end }}
{{- $startupBudget := mul (int $v.probes.startup.periodSeconds) (int $v.probes.startup.failureThreshold) }}
{{- if lt (int $v.progressDeadlineSeconds) (int $startupBudget) }}
{{- fail (printf "progressDeadlineSeconds (%d) is shorter than the startup budget, probes.startup.periodSeconds x failureThreshold (%d s): the rollout would fail while the models still load; raise progressDeadlineSeconds to at least %d plus the time a GPU node and the image take to arrive, or shorten the startup budget" (int $v.progressDeadlineSeconds) (int $startupBudget) (int $startupBudget)) }}
{{- end }}
{{- if and $v.gpu.partitionSize $v.gpu.sharing.strategy (ne $v.gpu.sharing.strategy "time-sharing") }}
{{- fail "gpu.partitionSize (MIG) combines only with gpu.sharing.strategy=time-sharing on GKE: clear one of them" }}
{{- end }}
{{- if and $v.gpu.mps.enabled (eq (int $v.gpu.count) 0) }}
{{- fail "gpu.mps.enabled needs GPUs: set gpu.count, or leave gpu.mps.enabled false on CPU nodes" }}
{{- end }}
{{- if and $v.gpu.mps.enabled $v.gpu.sharing.strategy }}
{{- fail (printf "gpu.mps.enabled starts a daemon that expects the pod's GPUs to itself, but gpu.sharing.strategy=%s shares them with other pods (with mps, GKE runs the daemon): clear one of them" $v.gpu.sharing.strategy) }}
{{- end }}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas (%d) is above autoscaling.maxReplicas (%d): lower minReplicas or raise maxReplicas" (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- end }}
{{- $as := $v.autoscaling }}
{{- if $as.enabled }}
{{- if and (eq $as.engine "gkePodMetrics") (eq $as.metric "queueTime") }}
{{- fail "autoscaling.engine=gkePodMetrics has GKE read gauges only, and queueTime is the rate of a counter (nv_inference_queue_duration_us): use autoscaling.metric=pendingRequests, or autoscaling.engine=stackdriverAdapter or keda, which take the counter's rate" }}
{{- end }}
{{- if and (eq $as.engine "gkePodMetrics") (eq $as.metric "gpuDutyCycle") }}
{{- fail "autoscaling.engine=gkePodMetrics reads gauges from Triton's own metrics port, and gpuDutyCycle is GKE's system metric in Cloud Monitoring: use autoscaling.metric=pendingRequests, or autoscaling.engine=stackdriverAdapter or keda" }}
{{- end }}
{{- if and (eq $as.engine "keda") (not $as.keda.projectId) }}
{{- fail "autoscaling.engine=keda queries Managed Prometheus and Cloud Monitoring through Google's Prometheus API, which is per project: set autoscaling.keda.projectId to the cluster's Google Cloud project ID" }}
{{- end }}
{{- if and (ne $as.engine "gkePodMetrics") (ne $as.metric "gpuDutyCycle") (not $v.metrics.podMonitoring.enabled) }}
{{- fail (printf "autoscaling.metric=%s with autoscaling.engine=%s reads Triton's metrics as Managed Prometheus stores them: set metrics.podMonitoring.enabled=true, or use autoscaling.metric=gpuDutyCycle (or engine gkePodMetrics with pendingRequests, which needs no scraping)" $as.metric $as.engine) }}
{{- end }}
{{- if and (eq $as.engine "keda") (eq $as.metric "queueTime") $v.metrics.podMonitoring.enabled }}
{{- $window := include "triton.seconds" $as.keda.rateWindow | float64 }}
{{- $scrape := include "triton.seconds" $v.metrics.podMonitoring.interval | float64 }}
{{- if lt $window (mulf 2.0 $scrape) }}
{{- fail (printf "autoscaling.keda.rateWindow (%s) spans fewer than two scrapes (metrics.podMonitoring.interval %s), so rate() would find no data and KEDA no value: set it to at least twice the interval" $as.keda.rateWindow $v.metrics.podMonitoring.interval) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and $v.autoscaling.enabled (eq $v.autoscaling.metric "gpuDutyCycle") (eq (int $v.gpu.count) 0) }}
{{- fail "autoscaling.metric=gpuDutyCycle needs GPUs: set gpu.count above 0, or scale on queueTime or pendingRequests" }}
{{- end }}
{{- if eq $v.ingress.mode "gatewayApi" }}
{{- if and $v.ingress.gatewayApi.createGateway (not $v.ingress.gatewayApi.className) }}
{{- fail "ingress.mode=gatewayApi creates a Gateway but ingress.gatewayApi.className is empty: set a GatewayClass (e.g. gke-l7-regional-external-managed), or set ingress.gatewayApi.createGateway=false and ingress.gatewayApi.parentRef.name" }}
{{- end }}
{{- if and (not $v.ingress.gatewayApi.createGateway) (not $v.ingress.gatewayApi.parentRef.name) }}
{{- fail "ingress.mode=gatewayApi with createGateway=false needs a parent: set ingress.gatewayApi.parentRef.name to an existing Gateway" }}
{{- end }}
{{- $grpcHost := include "triton.grpcHost" . }}
{{- if and $v.ingress.grpc.enabled (or (not $grpcHost) (eq $grpcHost $v.ingress.host)) }}
{{- fail "ingress.mode=gatewayApi routes gRPC with a GRPCRoute, which may not share a hostname with the HTTPRoute: set ingress.grpc.host to its own name (e.g. grpc.example.com), or ingress.hostSuffix for grpc.<release>.<namespace>.<hostSuffix>, or ingress.grpc.enabled=false" }}
{{- end }}
{{- end }}
{{- if and (eq $v.ingress.mode "gatewayApi") (not $v.ingress.gatewayApi.regexPathMatch) (lt (len $v.ingress.inferencePaths) 3) }}
{{- fail (printf "ingress.inferencePaths is %s, but with ingress.gatewayApi.regexPathMatch=false the edge routes the prefix /v2/models/, which passes every endpoint under it: set regexPathMatch=true (Istio, Envoy Gateway) to narrow it, or list infer, generate and generate_stream" (toJson $v.ingress.inferencePaths)) }}
{{- end }}
{{- if and $v.ingress.openai.enabled (eq $v.ingress.mode "none") }}
{{- fail "ingress.openai routes the OpenAI-compatible frontend at the edge: set ingress.mode to istio or gatewayApi, or ingress.openai.enabled=false" }}
{{- end }}
{{- if and $v.ingress.openai.enabled (not $v.ingress.openai.serviceName) }}
{{- fail "ingress.openai.enabled needs ingress.openai.serviceName: the Service of the process running Triton's OpenAI-compatible frontend in this namespace" }}
{{- end }}
{{- if and (ne $v.ingress.mode "none") $v.ingress.tls.enabled (not $v.ingress.tls.secretName) }}
{{- fail "ingress.tls.enabled needs ingress.tls.secretName: the Secret holding the certificate (Istio: in the ingress gateway's namespace; Gateway API: in the release namespace)" }}
{{- end }}
{{- if and $v.ingress.tls.httpsRedirect (not $v.ingress.tls.enabled) }}
{{- fail "ingress.tls.httpsRedirect redirects to HTTPS, which is off: set ingress.tls.enabled=true and ingress.tls.secretName" }}
{{- end }}
{{- if and (eq $v.ingress.mode "gatewayApi") $v.ingress.tls.enabled (not $v.ingress.gatewayApi.createGateway) }}
{{- fail "ingress.tls configures listeners of the Gateway this chart creates; with an existing Gateway (createGateway=false), configure TLS on that Gateway and leave ingress.tls.enabled=false" }}
{{- end }}
{{- $np := $v.networkPolicy }}
{{- if and $np.enabled $np.ingressMode (ne $v.ingress.mode "none") (ne $np.ingressMode $v.ingress.mode) }}
{{- fail (printf "networkPolicy.ingressMode=%s admits another release's ingress, for a canary with no ingress of its own, but this release routes with ingress.mode=%s: leave networkPolicy.ingressMode empty" $np.ingressMode $v.ingress.mode) }}
{{- end }}
{{- $class := $v.ingress.gatewayApi.className }}
{{- if and $np.enabled (eq $v.ingress.mode "gatewayApi") $v.ingress.gatewayApi.createGateway (or (contains "regional" $class) (contains "rilb" $class)) (not $np.proxyOnlySubnet) }}
{{- fail (printf "ingress.gatewayApi.className=%s is a regional or internal load balancer whose proxies reach Triton from the region's proxy-only subnet, which the NetworkPolicy would block: set networkPolicy.proxyOnlySubnet to its range (gcloud compute networks subnets list --filter=purpose=REGIONAL_MANAGED_PROXY --format='value(region,ipCidrRange)')" $class) }}
{{- end }}
{{- if and (eq $v.ingress.mode "istio") (not (include "triton.ingressHost" .)) }}
{{- fail "ingress.mode=istio needs ingress.host: with no host the routes claim every host (*), and Istio serves only one of two Gateways whose hosts overlap on the same ingress gateway and port (IST0145 ConflictingGateways), so a second release would collide with this one; set ingress.host to a name of this release's own (and ingress.grpc.host if gRPC has its own), or ingress.hostSuffix for <release>.<namespace>.<hostSuffix>" }}
{{- end }}
{{- if and (eq $v.ingress.mode "istio") (or (hasPrefix "*" $v.ingress.host) (hasPrefix "*" $v.ingress.grpc.host)) }}
{{- fail "ingress.mode=istio matches this release's hosts exactly, and a wildcard host would overlap other releases' hosts on the same ingress gateway (IST0145 ConflictingGateways): name the host exactly; a shared Gateway (ingress.istio.createGateway=false, ingress.istio.existingGateway=NAMESPACE/NAME) may serve the wildcard itself" }}
{{- end }}
{{- if and (eq $v.ingress.mode "istio") (not $v.ingress.istio.createGateway) (not $v.ingress.istio.existingGateway) }}
{{- fail "ingress.mode=istio with createGateway=false needs ingress.istio.existingGateway (namespace/name)" }}
{{- end }}
{{- if and $v.ingress.canary.enabled (eq $v.ingress.mode "none") }}
{{- fail "ingress.canary splits traffic at the ingress: set ingress.mode to istio or gatewayApi, or ingress.canary.enabled=false" }}
{{- end }}
{{- if and $v.ingress.canary.enabled (not $v.ingress.canary.serviceName) }}
{{- fail "ingress.canary.enabled needs ingress.canary.serviceName: the Service of the second Triton release in this namespace" }}
{{- end }}
{{- if and $v.ingress.canary.enabled (eq $v.ingress.canary.serviceName (include "triton.fullname" .)) }}
{{- fail "ingress.canary.serviceName names this release's own Service: name the second release's Service" }}
{{- end }}
{{- if and $v.security.jwt.enabled (ne $v.ingress.mode "istio") }}
{{- fail "security.jwt is enforced by Istio sidecars: set ingress.mode=istio (with sidecar injection in the namespace), or security.jwt.enabled=false" }}
{{- end }}
{{- if and $v.security.jwt.enabled (not $v.security.jwt.issuer) }}
{{- fail "security.jwt.enabled needs security.jwt.issuer (the `iss` of accepted tokens)" }}
{{- end }}
{{- if and $v.security.iap.enabled (ne $v.ingress.mode "gatewayApi") }}
{{- fail "security.iap configures GKE's Gateway load balancer: set ingress.mode=gatewayApi, or security.iap.enabled=false" }}
{{- end }}
{{- if and $v.security.iap.enabled (or (not $v.security.iap.clientId) (not $v.security.iap.clientSecretName)) }}
{{- fail "security.iap.enabled needs security.iap.clientId and security.iap.clientSecretName (a Secret whose `key` holds the OAuth client secret)" }}
{{- end }}
{{- if and $v.modelLoading.gcsFuse.enabled $v.modelLoading.cache.enabled }}
{{- fail "modelLoading.gcsFuse and modelLoading.cache both replace Triton's download of modelRepository: enable one of them" }}
{{- end }}
{{- if and (or $v.modelLoading.gcsFuse.enabled $v.modelLoading.cache.enabled) (not (hasPrefix "gs://" $v.modelRepository)) }}
{{- fail (printf "modelLoading.gcsFuse and modelLoading.cache read a Cloud Storage repository, but modelRepository is %q: set it to gs://BUCKET/PATH, or turn them off to let Triton read it directly" $v.modelRepository) }}
{{- end }}
{{- if and $v.modelLoading.cache.enabled (eq $v.modelLoading.cache.volume.type "persistentVolumeClaim") (not $v.modelLoading.cache.volume.claimName) }}
{{- fail "modelLoading.cache.volume.type=persistentVolumeClaim needs modelLoading.cache.volume.claimName: the claim holding the copy" }}
{{- end }}
{{- range $v.server.extraArgs }}
{{- $flag := regexReplaceAll "=.*" . "" }}
{{- if has $flag (list "--model-repository" "--model-load-thread-count") }}
{{- fail (printf "server.extraArgs sets %s, which the chart writes itself: use modelRepository (and modelLoading) or modelLoading.threadCount instead" $flag) }}
{{- end }}
{{- end }}
{{- $reserved := list "dshm" "tmp" "model-cache" "model-repository" "gke-gcsfuse-cache" }}
{{- range $v.extraVolumes }}
{{- if hasKey . "hostPath" }}
{{- fail (printf "extraVolumes: %s is a hostPath volume, which Pod Security restricted forbids: use a Secret, ConfigMap, PersistentVolumeClaim, CSI or emptyDir volume" .name) }}
{{- end }}
{{- if has .name $reserved }}
{{- fail (printf "extraVolumes: the name %s is the chart's own volume: choose another name" .name) }}
{{- end }}
{{- end }}
{{- if and $v.standby.enabled (eq (int $v.gpu.count) 0) }}
{{- fail "standby keeps GPU nodes warm, but gpu.count is 0: set gpu.count, or standby.enabled=false" }}
{{- end }}
{{- $tagRelease := regexFind "^[0-9]{2}[.][0-9]{2}(-|$)" $v.image.tag | trimSuffix "-" }}
{{- $release := include "triton.release" . }}
{{- if and $tagRelease (ne $tagRelease $release) }}
{{- fail (printf "image.tag=%s is NGC release %s, but the chart takes the image for release %s (%s): set image.release=%s as well, so that what depends on the release (--http-max-input-size from 25.06, the perf_analyzer SDK image) follows the image; or set only image.release and leave image.tag empty. If you did not set image.tag, it is an earlier chart's default that `helm upgrade --reuse-values` kept: upgrade with --reset-then-reuse-values instead" $v.image.tag $tagRelease $release (ternary "image.release" "this chart's own, as image.release is empty" (ne $v.image.release "")) $tagRelease) }}
{{- end }}
{{- if and $v.requestLimits.cloudArmorPolicy (not (include "triton.gkeGateway" .)) }}
{{- fail "requestLimits.cloudArmorPolicy attaches through GKE's GCPBackendPolicy: it needs ingress.mode=gatewayApi with a GKE gateway class (gke-...); in other modes, limit requests at your own edge (SECURITY.md)" }}
{{- end }}
{{- if and $v.requestLimits.istioEnvoyFilter (ne $v.ingress.mode "istio") }}
{{- fail "requestLimits.istioEnvoyFilter configures Istio sidecars: it needs ingress.mode=istio" }}
{{- end }}
{{- if and $v.requestLimits.istioEnvoyFilter (not $v.requestLimits.maxBodyBytes) $v.requestLimits.allowCompressedBodies }}
{{- fail "requestLimits.istioEnvoyFilter has nothing to do with maxBodyBytes 0 and allowCompressedBodies true: set a limit or leave the filter off" }}
{{- end }}
{{- if not $v.modelRepository }}
{{- fail "modelRepository is required: set it to the Triton model repository, e.g. --set modelRepository=gs://BUCKET/PATH" }}
{{- end }}
{{- end }}
