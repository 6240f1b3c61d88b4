package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/dispatch"
	"github.com/kubedispatch/kubedispatch/dispatch/message"
	"github.com/kubedispatch/kubedispatch/sources"
	"github.com/kubedispatch/kubedispatch/sources/builtin"
)

func main() {
	var opts Options
	fs := flag.NewFlagSet("dispatcher", flag.ExitOnError)
	opts.AddFlags(fs)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	_ = fs.Parse(os.Args[1:])
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	klog.SetLogger(ctrl.Log)
	if err := run(ctrl.SetupSignalHandler(), opts); err != nil {
		ctrl.Log.Error(err, "Dispatcher stopped")
		os.Exit(1)
	}
}

func run(ctx context.Context, opts Options) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	cfg, err := restConfig(opts.Kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = float32(opts.KubeAPIQPS), opts.KubeAPIBurst
	cfg.UserAgent = "kubedispatch-dispatcher"

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return fmt.Errorf("building scheme: %w", err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return fmt.Errorf("building scheme: %w", err)
	}
	sh, err := parseShard(opts)
	if err != nil {
		return err
	}
	cacheOpts, err := cacheOptions(opts, sh)
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         cacheOpts,
		Metrics:                       metricsOptions(opts),
		HealthProbeBindAddress:        opts.HealthProbeBindAddress,
		PprofBindAddress:              opts.PprofBindAddress,
		LeaderElection:                opts.LeaderElect,
		LeaderElectionID:              opts.LeaderElectionID,
		GracefulShutdownTimeout:       &opts.GracefulShutdown,
		LeaderElectionNamespace:       opts.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &opts.LeaseDuration,
		RenewDeadline:                 &opts.RenewDeadline,
		RetryPeriod:                   &opts.RetryPeriod,
		Client:                        client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	policy, err := opts.EndpointPolicy()
	if err != nil {
		return err
	}
	registry, err := builtin.Registry(sources.WithEndpointPolicy(policy))
	if err != nil {
		return err
	}
	r := &dispatch.Reconciler{
		Client:               mgr.GetClient(),
		APIReader:            mgr.GetAPIReader(),
		Registry:             registry,
		Clock:                clock.RealClock{},
		Recorder:             mgr.GetEventRecorder("kubedispatch"),
		Metrics:              dispatch.NewMetrics(metrics.Registry),
		MessageMetrics:       message.NewMetrics(metrics.Registry),
		ClusterAuthNamespace: opts.Namespace,
		CreateWorkers:        opts.CreateWorkers,
		MaxCreatesPerTick:    int64(opts.MaxCreatesPerTick),
		TriggerTimeout:       opts.TriggerTimeout,
		TriggerConcurrency:   opts.TriggerConcurrency,
		SecretRefresh:        opts.SecretRefresh,
		ShardLabelKeys:       sh.jobKeys(),
	}
	if err := r.SetupWithManager(mgr, opts.Concurrency); err != nil {
		return fmt.Errorf("setting up the ScaledJob controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("adding health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("informers", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return errors.New("informer caches not synced")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("adding readiness check: %w", err)
	}
	if sh.unshardable != "" {
		ctrl.Log.Info("The Job and pod caches hold every managed Job and pod, not only this shard's: --watch-label-selector names a label the dispatcher or the Job controller sets on Jobs and pods itself",
			"watchLabelSelector", opts.WatchLabelSelector, "labelKey", sh.unshardable)
	}
	ctrl.Log.Info("Starting dispatcher", "triggerTypes", registry.Types(), "leaderElect", opts.LeaderElect,
		"watchNamespaces", opts.Namespaces(), "kubeAPIQPS", opts.KubeAPIQPS, "kubeAPIBurst", opts.KubeAPIBurst,
		"metricsAddress", opts.MetricsAddress(), "metricsSecure", opts.MetricsSecure,
		"allowedEndpoints", opts.AllowedEndpoints, "allowAmbientCredentialsOnCustomEndpoints", opts.AllowAmbientCredentials)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("running manager: %w", err)
	}
	return nil
}

// metricsOptions serves /metrics on --metrics-bind-address. With --metrics-secure (the default) it is HTTPS, and
// every request must carry a bearer token that the API server authenticates (TokenReview) and authorizes for GET on
// the non-resource URL /metrics (SubjectAccessReview), which the ClusterRole kubedispatch-metrics-reader grants.
// HTTP/2 is off on that listener, as in kubebuilder's scaffold: its stream resets (CVE-2023-44487) cost a server
// more than they cost a client, and a scrape needs none of it.
func metricsOptions(opts Options) metricsserver.Options {
	o := metricsserver.Options{BindAddress: opts.MetricsAddress()}
	if opts.MetricsSecure {
		o.SecureServing = true
		o.FilterProvider = filters.WithAuthenticationAndAuthorization
		o.CertDir = opts.MetricsCertDir
		o.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	}
	return o
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("loading kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, nil
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("loading in-cluster config (set --kubeconfig to run outside a cluster): %w", err)
	}
	return cfg, nil
}
