package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kubedispatch/kubedispatch/sources"
)

// Options are the process settings. Each flag can also be set by the environment variable named on its line;
// a flag given on the command line wins.
type Options struct {
	Kubeconfig              string        // --kubeconfig, KUBECONFIG
	LeaderElect             bool          // --leader-elect, KUBEDISPATCH_LEADER_ELECT
	LeaderElectionNamespace string        // --leader-election-namespace, KUBEDISPATCH_LEADER_ELECTION_NAMESPACE (default: POD_NAMESPACE, else "default")
	LeaseDuration           time.Duration // --leader-elect-lease-duration, KUBEDISPATCH_LEADER_ELECT_LEASE_DURATION
	RenewDeadline           time.Duration // --leader-elect-renew-deadline, KUBEDISPATCH_LEADER_ELECT_RENEW_DEADLINE
	RetryPeriod             time.Duration // --leader-elect-retry-period, KUBEDISPATCH_LEADER_ELECT_RETRY_PERIOD
	MetricsBindAddress      string        // --metrics-bind-address, KUBEDISPATCH_METRICS_BIND_ADDRESS ("0" disables; empty: :8443, or :8080 with --metrics-secure=false)
	MetricsSecure           bool          // --metrics-secure, KUBEDISPATCH_METRICS_SECURE: HTTPS with Kubernetes authn/authz (else plain HTTP, open)
	MetricsCertDir          string        // --metrics-cert-dir, KUBEDISPATCH_METRICS_CERT_DIR: tls.crt and tls.key of /metrics (empty: self-signed)
	HealthProbeBindAddress  string        // --health-probe-bind-address, KUBEDISPATCH_HEALTH_PROBE_BIND_ADDRESS ("0" disables)
	KubeAPIQPS              float64       // --kube-api-qps, KUBEDISPATCH_KUBE_API_QPS
	KubeAPIBurst            int           // --kube-api-burst, KUBEDISPATCH_KUBE_API_BURST
	WatchNamespace          string        // --watch-namespace, WATCH_NAMESPACE (comma-separated; empty = all)
	WatchLabelSelector      string        // --watch-label-selector, WATCH_LABEL_SELECTOR (ScaledJobs only)
	Namespace               string        // --namespace, POD_NAMESPACE: the dispatcher's own namespace (ClusterTriggerAuthentication Secrets)
	Concurrency             int           // --concurrency, KUBEDISPATCH_CONCURRENCY: ScaledJobs reconciled in parallel
	CreateWorkers           int           // --create-workers, KUBEDISPATCH_CREATE_WORKERS: parallel Job creations per tick
	MaxCreatesPerTick       int           // --max-creates-per-tick, KUBEDISPATCH_MAX_CREATES_PER_TICK
	TriggerTimeout          time.Duration // --trigger-timeout, KUBEDISPATCH_TRIGGER_TIMEOUT: bound of one trigger reading
	TriggerConcurrency      int           // --trigger-concurrency, KUBEDISPATCH_TRIGGER_CONCURRENCY: trigger reads in flight
	SecretRefresh           time.Duration // --secret-refresh-interval, KUBEDISPATCH_SECRET_REFRESH_INTERVAL
	LeaderElectionID        string        // --leader-election-id, KUBEDISPATCH_LEADER_ELECTION_ID: the Lease name (one per shard)
	GracefulShutdown        time.Duration // --graceful-shutdown-timeout, KUBEDISPATCH_GRACEFUL_SHUTDOWN_TIMEOUT
	PprofBindAddress        string        // --pprof-bind-address, KUBEDISPATCH_PPROF_BIND_ADDRESS ("" or "0" disables)
	// AllowedEndpoints (--allowed-endpoints, KUBEDISPATCH_ALLOWED_ENDPOINTS) are the comma-separated host patterns a
	// trigger may point a non-default endpoint at (awsEndpoint, monitoringEndpoint, endpointSuffix); empty: none.
	AllowedEndpoints string
	// AllowAmbientCredentials (--allow-ambient-credentials-on-custom-endpoints,
	// KUBEDISPATCH_ALLOW_AMBIENT_CREDENTIALS_ON_CUSTOM_ENDPOINTS) lets an allowed non-default endpoint receive the
	// dispatcher's own identity and ClusterTriggerAuthentication credentials.
	AllowAmbientCredentials bool
}

// AddFlags registers the flags with their env defaults.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", env("KUBECONFIG", ""), "path to a kubeconfig; in-cluster config when empty (env KUBECONFIG)")
	fs.BoolVar(&o.LeaderElect, "leader-elect", envBool("KUBEDISPATCH_LEADER_ELECT", true), "elect a leader so only one replica dispatches (env KUBEDISPATCH_LEADER_ELECT)")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", env("KUBEDISPATCH_LEADER_ELECTION_NAMESPACE", env("POD_NAMESPACE", "default")), "namespace of the leader-election Lease (env KUBEDISPATCH_LEADER_ELECTION_NAMESPACE)")
	fs.DurationVar(&o.LeaseDuration, "leader-elect-lease-duration", envDuration("KUBEDISPATCH_LEADER_ELECT_LEASE_DURATION", 15*time.Second), "leader lease duration (env KUBEDISPATCH_LEADER_ELECT_LEASE_DURATION)")
	fs.DurationVar(&o.RenewDeadline, "leader-elect-renew-deadline", envDuration("KUBEDISPATCH_LEADER_ELECT_RENEW_DEADLINE", 10*time.Second), "leader renew deadline (env KUBEDISPATCH_LEADER_ELECT_RENEW_DEADLINE)")
	fs.DurationVar(&o.RetryPeriod, "leader-elect-retry-period", envDuration("KUBEDISPATCH_LEADER_ELECT_RETRY_PERIOD", 2*time.Second), "leader retry period (env KUBEDISPATCH_LEADER_ELECT_RETRY_PERIOD)")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", env("KUBEDISPATCH_METRICS_BIND_ADDRESS", ""), "address of /metrics; 0 disables; empty: :8443, or :8080 with --metrics-secure=false (env KUBEDISPATCH_METRICS_BIND_ADDRESS)")
	fs.BoolVar(&o.MetricsSecure, "metrics-secure", envBool("KUBEDISPATCH_METRICS_SECURE", true),
		"serve /metrics over HTTPS to callers the API server authenticates (TokenReview) and authorizes for GET /metrics (SubjectAccessReview); "+
			"false serves plain HTTP to anyone who can reach the port (env KUBEDISPATCH_METRICS_SECURE)")
	fs.StringVar(&o.MetricsCertDir, "metrics-cert-dir", env("KUBEDISPATCH_METRICS_CERT_DIR", ""),
		"directory holding tls.crt and tls.key for the HTTPS /metrics, reloaded when they change; empty: a self-signed certificate made at start (env KUBEDISPATCH_METRICS_CERT_DIR)")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", env("KUBEDISPATCH_HEALTH_PROBE_BIND_ADDRESS", ":8081"), "address of /healthz and /readyz; 0 disables (env KUBEDISPATCH_HEALTH_PROBE_BIND_ADDRESS)")
	fs.Float64Var(&o.KubeAPIQPS, "kube-api-qps", envFloat("KUBEDISPATCH_KUBE_API_QPS", 100), "client QPS towards the API server (client-go default is 5) (env KUBEDISPATCH_KUBE_API_QPS)")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", envInt("KUBEDISPATCH_KUBE_API_BURST", 200), "client burst towards the API server (client-go default is 10) (env KUBEDISPATCH_KUBE_API_BURST)")
	fs.StringVar(&o.WatchNamespace, "watch-namespace", env("WATCH_NAMESPACE", ""), "comma-separated namespaces to watch; all when empty (env WATCH_NAMESPACE)")
	fs.StringVar(&o.WatchLabelSelector, "watch-label-selector", env("WATCH_LABEL_SELECTOR", ""), "only ScaledJobs matching this label selector (env WATCH_LABEL_SELECTOR)")
	fs.StringVar(&o.Namespace, "namespace", env("POD_NAMESPACE", "default"), "the dispatcher's own namespace, where ClusterTriggerAuthentication Secrets are read (env POD_NAMESPACE)")
	fs.IntVar(&o.Concurrency, "concurrency", envInt("KUBEDISPATCH_CONCURRENCY", 8), "ScaledJobs reconciled in parallel (env KUBEDISPATCH_CONCURRENCY)")
	fs.IntVar(&o.MaxCreatesPerTick, "max-creates-per-tick", envInt("KUBEDISPATCH_MAX_CREATES_PER_TICK", 500), "at most this many Jobs per ScaledJob tick; more follow in the next tick at once (env KUBEDISPATCH_MAX_CREATES_PER_TICK)")
	fs.DurationVar(&o.TriggerTimeout, "trigger-timeout", envDuration("KUBEDISPATCH_TRIGGER_TIMEOUT", 10*time.Second), "bound of one trigger reading (env KUBEDISPATCH_TRIGGER_TIMEOUT)")
	fs.IntVar(&o.TriggerConcurrency, "trigger-concurrency", envInt("KUBEDISPATCH_TRIGGER_CONCURRENCY", 64), "trigger reads in flight across all ScaledJobs (env KUBEDISPATCH_TRIGGER_CONCURRENCY)")
	fs.DurationVar(&o.SecretRefresh, "secret-refresh-interval", envDuration("KUBEDISPATCH_SECRET_REFRESH_INTERVAL", 5*time.Minute), "longest trigger credentials (Secrets) are reused before being read again; sooner when the queue refuses them, and at once when a TriggerAuthentication or ClusterTriggerAuthentication they come from changes (env KUBEDISPATCH_SECRET_REFRESH_INTERVAL)")
	fs.StringVar(&o.LeaderElectionID, "leader-election-id", env("KUBEDISPATCH_LEADER_ELECTION_ID", "dispatcher.kubedispatch.io"), "name of the leader-election Lease; give each --watch-label-selector shard its own (env KUBEDISPATCH_LEADER_ELECTION_ID)")
	fs.DurationVar(&o.GracefulShutdown, "graceful-shutdown-timeout", envDuration("KUBEDISPATCH_GRACEFUL_SHUTDOWN_TIMEOUT", 10*time.Second), "how long running ticks may take to finish after SIGTERM (env KUBEDISPATCH_GRACEFUL_SHUTDOWN_TIMEOUT)")
	fs.StringVar(&o.PprofBindAddress, "pprof-bind-address", env("KUBEDISPATCH_PPROF_BIND_ADDRESS", ""), "address of Go's /debug/pprof handlers, for profiling; off when empty or 0, keep it on loopback (env KUBEDISPATCH_PPROF_BIND_ADDRESS)")
	fs.IntVar(&o.CreateWorkers, "create-workers", envInt("KUBEDISPATCH_CREATE_WORKERS", 32), "parallel Job creations within one tick (env KUBEDISPATCH_CREATE_WORKERS)")
	fs.StringVar(&o.AllowedEndpoints, sources.FlagAllowedEndpoints, env("KUBEDISPATCH_ALLOWED_ENDPOINTS", ""),
		"comma-separated host patterns (e.g. *.internal.example.com, 127.0.0.1:*, localhost) that a trigger's non-default endpoint "+
			"(awsEndpoint, monitoringEndpoint, cloud Private endpointSuffix) must match; a pattern without a port matches the default port only; empty allows none (env KUBEDISPATCH_ALLOWED_ENDPOINTS)")
	fs.BoolVar(&o.AllowAmbientCredentials, sources.FlagAllowAmbientCredentials, envBool("KUBEDISPATCH_ALLOW_AMBIENT_CREDENTIALS_ON_CUSTOM_ENDPOINTS", false),
		"also send the dispatcher's own identity (pod identity, its default credentials) and ClusterTriggerAuthentication credentials to allowed non-default endpoints "+
			"(env KUBEDISPATCH_ALLOW_AMBIENT_CREDENTIALS_ON_CUSTOM_ENDPOINTS)")
}

// EndpointPolicy returns the endpoint policy of --allowed-endpoints and --allow-ambient-credentials-on-custom-endpoints.
func (o *Options) EndpointPolicy() (sources.EndpointPolicy, error) {
	allowed, err := sources.ParseHostPatterns(o.AllowedEndpoints)
	if err != nil {
		return sources.EndpointPolicy{}, fmt.Errorf("parsing --%s: %w", sources.FlagAllowedEndpoints, err)
	}
	return sources.EndpointPolicy{Allowed: allowed, AllowAmbientCredentials: o.AllowAmbientCredentials}, nil
}

// MetricsAddress returns --metrics-bind-address, or its default for --metrics-secure when it is empty.
func (o *Options) MetricsAddress() string {
	switch {
	case o.MetricsBindAddress != "":
		return o.MetricsBindAddress
	case o.MetricsSecure:
		return ":8443"
	default:
		return ":8080"
	}
}

// Validate reports bad settings, naming the flag.
func (o *Options) Validate() error {
	var errs []string
	if o.KubeAPIQPS <= 0 {
		errs = append(errs, "--kube-api-qps must be > 0")
	}
	if o.KubeAPIBurst <= 0 {
		errs = append(errs, "--kube-api-burst must be > 0")
	}
	if o.Concurrency < 1 {
		errs = append(errs, "--concurrency must be >= 1")
	}
	if o.CreateWorkers < 1 {
		errs = append(errs, "--create-workers must be >= 1")
	}
	if o.MaxCreatesPerTick < 1 {
		errs = append(errs, "--max-creates-per-tick must be >= 1")
	}
	if o.TriggerConcurrency < 1 {
		errs = append(errs, "--trigger-concurrency must be >= 1")
	}
	if o.SecretRefresh <= 0 {
		errs = append(errs, "--secret-refresh-interval must be > 0")
	}
	if o.TriggerTimeout <= 0 {
		errs = append(errs, "--trigger-timeout must be > 0")
	}
	if o.GracefulShutdown <= 0 {
		errs = append(errs, "--graceful-shutdown-timeout must be > 0")
	}
	if o.LeaderElect && o.LeaderElectionID == "" {
		errs = append(errs, "--leader-election-id must not be empty")
	}
	if o.LeaderElect && o.RenewDeadline >= o.LeaseDuration {
		errs = append(errs, "--leader-elect-renew-deadline must be shorter than --leader-elect-lease-duration")
	}
	if o.MetricsCertDir != "" && !o.MetricsSecure {
		errs = append(errs, "--metrics-cert-dir needs --metrics-secure=true")
	}
	if _, err := o.EndpointPolicy(); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid options: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Namespaces returns the watched namespaces (nil = all).
func (o *Options) Namespaces() []string {
	var out []string
	for _, ns := range strings.Split(o.WatchNamespace, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			out = append(out, ns)
		}
	}
	return out
}

func env(k, def string) string {
	if v, ok := os.LookupEnv(k); ok && v != "" {
		return v
	}
	return def
}

func envBool(k string, def bool) bool {
	if b, err := strconv.ParseBool(env(k, "")); err == nil {
		return b
	}
	return def
}

func envInt(k string, def int) int {
	if i, err := strconv.Atoi(env(k, "")); err == nil {
		return i
	}
	return def
}

func envFloat(k string, def float64) float64 {
	if f, err := strconv.ParseFloat(env(k, ""), 64); err == nil {
		return f
	}
	return def
}

func envDuration(k string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(env(k, "")); err == nil {
		return d
	}
	return def
}
