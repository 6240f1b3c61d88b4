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
		"flag wins over env": {
			env:  map[string]string{"KUBEDISPATCH_KUBE_API_BURST": "7"},
			args: []string{"--kube-api-burst=300", "--leader-elect-lease-duration=20s"},
			want: func(o *Options) { o.KubeAPIBurst, o.LeaseDuration = 300, 20*time.Second },
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			for _, k := range []string{"KUBECONFIG", "POD_NAMESPACE", "WATCH_NAMESPACE", "WATCH_LABEL_SELECTOR", "KUBEDISPATCH_LEADER_ELECT_LEASE_DURATION"} {
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

func TestNamespacesSplitsAndTrims(t *testing.T) {
	o := Options{WatchNamespace: " a ,,b "}
	if diff := cmp.Diff([]string{"a", "b"}, o.Namespaces()); diff != "" {
		t.Error(diff)
	}
}
