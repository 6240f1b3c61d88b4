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
		"flag wins over env": {
			env:  map[string]string{"KUBEDISPATCH_KUBE_API_BURST": "7"},
			args: []string{"--kube-api-burst=300", "--leader-elect-lease-duration=20s"},
			want: func(o *Options) { o.KubeAPIBurst, o.LeaseDuration = 300, 20*time.Second },
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			for _, k := range []string{"KUBECONFIG", "POD_NAMESPACE", "WATCH_NAMESPACE", "WATCH_LABEL_SELECTOR", "KUBEDISPATCH_LEADER_ELECT_LEASE_DURATION",
				"KUBEDISPATCH_ALLOWED_ENDPOINTS", "KUBEDISPATCH_ALLOW_AMBIENT_CREDENTIALS_ON_CUSTOM_ENDPOINTS"} {
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
				RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second, MetricsBindAddress: ":8080",
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

func TestNamespacesSplitsAndTrims(t *testing.T) {
	o := Options{WatchNamespace: " a ,,b "}
	if diff := cmp.Diff([]string{"a", "b"}, o.Namespaces()); diff != "" {
		t.Error(diff)
	}
}
