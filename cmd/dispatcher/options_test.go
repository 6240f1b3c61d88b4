package main

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestOptionsDefaultsEnvAndFlags(t *testing.T) {
	cases := map[string]struct {
		env  map[string]string
		args []string
		want func(o *Options)
	}{
		"defaults": {
			want: func(o *Options) {},
		},
		"env sets values": {
			env: map[string]string{"KUBEDISPATCH_LEADER_ELECT": "false", "KUBEDISPATCH_KUBE_API_QPS": "50", "WATCH_NAMESPACE": "a, b", "POD_NAMESPACE": "ops"},
			want: func(o *Options) {
				o.LeaderElect, o.KubeAPIQPS, o.WatchNamespace, o.Namespace, o.LeaderElectionNamespace = false, 50, "a, b", "ops", "ops"
			},
		},
		"endpoint policy from env": {
			env: map[string]string{"KUBEDISPATCH_ALLOWED_ENDPOINTS": "*.internal.example.com,127.0.0.1:*",
				"KUBEDISPATCH_ALLOW_AMBIENT_CREDENTIALS_ON_CUSTOM_ENDPOINTS": "true"},
			want: func(o *Options) {
				o.AllowedEndpoints, o.AllowAmbientCredentials = "*.internal.example.com,127.0.0.1:*", true
			},
		},
		"endpoint policy flags win over env": {
			env:  map[string]string{"KUBEDISPATCH_ALLOWED_ENDPOINTS": "a.example.com", "KUBEDISPATCH_ALLOW_AMBIENT_CREDENTIALS_ON_CUSTOM_ENDPOINTS": "true"},
			args: []string{"--allowed-endpoints=localhost:*", "--allow-ambient-credentials-on-custom-endpoints=false"},
			want: func(o *Options) { o.AllowedEndpoints = "localhost:*" },
		},
		"metrics plain HTTP from env": {
			env:  map[string]string{"KUBEDISPATCH_METRICS_SECURE": "false"},
			want: func(o *Options) { o.MetricsSecure = false },
		},
		"metrics flags win over env": {
			env:  map[string]string{"KUBEDISPATCH_METRICS_SECURE": "false", "KUBEDISPATCH_METRICS_BIND_ADDRESS": ":9000"},
			args: []string{"--metrics-secure=true", "--metrics-bind-address=127.0.0.1:9443", "--metrics-cert-dir=/certs"},
			want: func(o *Options) { o.MetricsBindAddress, o.MetricsCertDir = "127.0.0.1:9443", "/certs" },
		},
		"flag wins over env": {
			env:  map[string]string{"KUBEDISPATCH_KUBE_API_BURST": "7"},
			args: []string{"--kube-api-burst=300", "--leader-elect-lease-duration=20s"},
			want: func(o *Options) { o.KubeAPIBurst, o.LeaseDuration = 300, 20*time.Second },
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			for _, k := range []string{"KUBECONFIG", "POD_NAMESPACE", "WATCH_NAMESPACE", "WATCH_LABEL_SELECTOR", "KUBEDISPATCH_LEADER_ELECT_LEASE_DURATION",
				"KUBEDISPATCH_ALLOWED_ENDPOINTS", "KUBEDISPATCH_ALLOW_AMBIENT_CREDENTIALS_ON_CUSTOM_ENDPOINTS",
				"KUBEDISPATCH_METRICS_SECURE", "KUBEDISPATCH_METRICS_BIND_ADDRESS", "KUBEDISPATCH_METRICS_CERT_DIR"} {
				t.Setenv(k, "")
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var got Options
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			got.AddFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			want := Options{
				LeaderElect: true, LeaderElectionNamespace: "default", LeaseDuration: 15 * time.Second,
				RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second, MetricsSecure: true,
				HealthProbeBindAddress: ":8081", KubeAPIQPS: 100, KubeAPIBurst: 200, Namespace: "default",
				Concurrency: 8, CreateWorkers: 32, MaxCreatesPerTick: 500, TriggerTimeout: 10 * time.Second,
				LeaderElectionID: "dispatcher.kubedispatch.io", GracefulShutdown: 10 * time.Second,
				TriggerConcurrency: 64, SecretRefresh: 5 * time.Minute,
			}
			tc.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestOptionsValidateNamesTheFlag(t *testing.T) {
	o := Options{KubeAPIQPS: 0, KubeAPIBurst: 1, Concurrency: 1, CreateWorkers: 1, LeaderElect: true, LeaseDuration: time.Second, RenewDeadline: 2 * time.Second,
		MaxCreatesPerTick: -1, TriggerTimeout: 0, GracefulShutdown: time.Second, LeaderElectionID: "x", TriggerConcurrency: 1, SecretRefresh: time.Minute}
	err := o.Validate()
	if err == nil {
		t.Fatal("Validate accepted --kube-api-qps=0 and a renew deadline above the lease duration")
	}
	for _, want := range []string{"--kube-api-qps", "--leader-elect-renew-deadline", "--max-creates-per-tick", "--trigger-timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// The endpoint policy is off by default (no custom endpoint, no ambient credentials on one), and a bad host pattern
// is refused at start naming the flag.
func TestEndpointPolicyOption(t *testing.T) {
	var o Options
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	t.Setenv("KUBEDISPATCH_ALLOWED_ENDPOINTS", "")
	t.Setenv("KUBEDISPATCH_ALLOW_AMBIENT_CREDENTIALS_ON_CUSTOM_ENDPOINTS", "")
	o.AddFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	p, err := o.EndpointPolicy()
	if err != nil || len(p.Allowed) != 0 || p.AllowAmbientCredentials {
		t.Errorf("default policy = %+v, %v; want nothing allowed", p, err)
	}
	o.AllowedEndpoints = "https://sqs.example.com"
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--allowed-endpoints") {
		t.Errorf("Validate with a URL as host pattern: %v, want an error naming --allowed-endpoints", err)
	}
	o.AllowedEndpoints = " 127.0.0.1:* , localhost:*,*.internal.example.com"
	p, err = o.EndpointPolicy()
	if err != nil || len(p.Allowed) != 3 || !p.Allowed[0].Matches("127.0.0.1", "4566") {
		t.Errorf("policy = %+v, %v; want three patterns, the first matching 127.0.0.1:4566", p, err)
	}
}

// /metrics is HTTPS with authentication and authorization unless --metrics-secure=false; an empty
// --metrics-bind-address picks the conventional port of each (8443, 8080).
func TestMetricsOptions(t *testing.T) {
	cases := map[string]struct {
		opts       Options
		wantAddr   string
		wantSecure bool
		wantFilter bool
	}{
		"default: HTTPS on :8443 behind the authn/authz filter": {opts: Options{MetricsSecure: true}, wantAddr: ":8443", wantSecure: true, wantFilter: true},
		"plain HTTP on :8080":       {opts: Options{MetricsSecure: false}, wantAddr: ":8080"},
		"an address given is kept":  {opts: Options{MetricsSecure: true, MetricsBindAddress: "127.0.0.1:9443"}, wantAddr: "127.0.0.1:9443", wantSecure: true, wantFilter: true},
		"0 disables, secure or not": {opts: Options{MetricsSecure: false, MetricsBindAddress: "0"}, wantAddr: "0"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := metricsOptions(tc.opts)
			if got.BindAddress != tc.wantAddr || got.SecureServing != tc.wantSecure || (got.FilterProvider != nil) != tc.wantFilter {
				t.Errorf("metricsOptions = address %q, secure %v, filter %v; want %q, %v, %v",
					got.BindAddress, got.SecureServing, got.FilterProvider != nil, tc.wantAddr, tc.wantSecure, tc.wantFilter)
			}
		})
	}
	o := Options{MetricsCertDir: "/certs", KubeAPIQPS: 1, KubeAPIBurst: 1, Concurrency: 1, CreateWorkers: 1, MaxCreatesPerTick: 1,
		TriggerTimeout: time.Second, GracefulShutdown: time.Second, TriggerConcurrency: 1, SecretRefresh: time.Minute}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--metrics-cert-dir") {
		t.Errorf("Validate with --metrics-cert-dir and --metrics-secure=false: %v, want an error naming --metrics-cert-dir", err)
	}
}

func TestNamespacesSplitsAndTrims(t *testing.T) {
	o := Options{WatchNamespace: " a ,,b "}
	if diff := cmp.Diff([]string{"a", "b"}, o.Namespaces()); diff != "" {
		t.Error(diff)
	}
}
