package benchkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/cluster"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// Prepare finds the repository root and ensures the control-plane binaries.
func Prepare() (root string, bins cluster.Binaries, err error) {
	root, err = cluster.RepoRoot()
	if err != nil {
		return "", cluster.Binaries{}, err
	}
	Step("Ensuring the control-plane binaries (built once, cached)")
	bins, err = cluster.EnsureBinaries(root)
	if err != nil {
		return "", cluster.Binaries{}, err
	}
	return root, bins, nil
}

// CleanStackDir removes the stack directory dir after a run, or keeps it (and says so) when keep is set or the run
// failed.
func CleanStackDir(dir string, keep bool, runErr error) {
	if keep || runErr != nil {
		fmt.Printf("stack directory kept: %s (component logs in logs/, dispatcher log in logs/dispatcher.log)\n", dir)
		return
	}
	_ = os.RemoveAll(dir)
}

// Stack is a started local stack with a client for it.
type Stack struct {
	Cluster *cluster.Cluster
	// Client knows the built-in types and kubedispatch's.
	Client client.Client
	// Startup is the time cluster.Start took.
	Startup time.Duration
}

// StartStack starts the local stack with SQS on moto in dir and builds its client.
func StartStack(ctx context.Context, dir string, bins cluster.Binaries) (*Stack, error) {
	return StartStackWith(ctx, dir, bins, cluster.Options{})
}

// StartStackWith is StartStack with the queue services of opts too: opts.PubSub starts the Pub/Sub emulator and
// opts.ServiceBus the Service Bus fake (SQS on moto always runs; Dir, Bins and Progress are set here).
func StartStackWith(ctx context.Context, dir string, bins cluster.Binaries, opts cluster.Options) (*Stack, error) {
	what := []string{"SQS on moto"}
	if opts.PubSub {
		what = append(what, "the Pub/Sub emulator")
	}
	if opts.ServiceBus {
		what = append(what, "the Service Bus fake")
	}
	Step("Starting the local stack (%s) in %s", strings.Join(what, ", "), dir)
	opts.Dir, opts.Bins, opts.SQS, opts.Progress = dir, bins, true, indent{}
	t := time.Now()
	c, err := cluster.Start(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("starting the local stack: %w", err)
	}
	st := &Stack{Cluster: c, Startup: time.Since(t)}
	Note("stack ready in %.1f s", st.Startup.Seconds())
	if st.Client, err = newClient(c.RESTConfig()); err != nil {
		return nil, errors.Join(err, st.Stop())
	}
	return st, nil
}

// Stop stops the local stack.
func (st *Stack) Stop() error {
	Step("Stopping the local stack")
	if err := st.Cluster.Stop(); err != nil {
		return fmt.Errorf("stopping the local stack: %w", err)
	}
	return nil
}

// newClient returns a client for cfg that knows the built-in types and kubedispatch's.
func newClient(cfg *rest.Config) (client.Client, error) {
	scheme := kruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("building the scheme: %w", err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("building the scheme: %w", err)
	}
	cl, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("building the client: %w", err)
	}
	return cl, nil
}

// InstallCRDs installs the CRDs of deploy/crd under root and creates namespaces.
func InstallCRDs(ctx context.Context, cl client.Client, root string, namespaces []string) error {
	Step("Installing the CRDs (deploy/crd) and namespaces %s", strings.Join(namespaces, ", "))
	if err := framework.InstallCRDs(ctx, cl, filepath.Join(root, "deploy", "crd")); err != nil {
		return fmt.Errorf("installing the CRDs: %w", err)
	}
	for _, ns := range namespaces {
		if err := createNamespace(ctx, cl, ns); err != nil {
			return err
		}
	}
	return nil
}

// createNamespace creates ns and waits for its default ServiceAccount, without which the Job controller cannot
// create pods.
func createNamespace(ctx context.Context, cl client.Client, ns string) error {
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", ns, err)
	}
	return WaitUntil(ctx, "the default ServiceAccount in "+ns, 2*time.Minute, 200*time.Millisecond, nil, func() (bool, error) {
		err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "default"}, &corev1.ServiceAccount{})
		return err == nil, err
	})
}
