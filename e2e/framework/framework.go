package framework

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kubedispatch/kubedispatch/e2e/cluster"
)

// PubSubProject is the Google Cloud project used on the Pub/Sub emulator.
const PubSubProject = "kubedispatch-test"

// Options tune Main.
type Options struct {
	// Scheme for the controller-runtime client; client-go's scheme when nil.
	Scheme *runtime.Scheme
	// CRDs, when set, is a directory of CRD manifests (deploy/crd) installed before the tests run.
	CRDs string
	// RealNode adds the stack's real node (cluster.Options.RealNode); see realnode.go.
	RealNode bool
}

var (
	stack  *cluster.Cluster
	scheme *runtime.Scheme
)

// Main starts the stack, runs the tests and stops the stack. Use it as:
//
//	func TestMain(m *testing.M) { os.Exit(framework.Main(m, framework.Options{})) }
//
// It builds the control-plane binaries on first use (cached by version), starts everything on free loopback ports
// in a fresh temporary directory, so several test binaries can run at once, and exports KUBECONFIG,
// AWS_ENDPOINT_URL_SQS, AWS_REGION, AWS credentials and PUBSUB_EMULATOR_HOST for code under test.
func Main(m *testing.M, opts Options) int {
	ctrllog.SetLogger(logr.Discard()) // test clients log nothing; the dispatcher under test has its own log
	scheme = opts.Scheme
	if scheme == nil {
		scheme = clientgoscheme.Scheme
	}
	root, err := cluster.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	bins, err := cluster.EnsureBinaries(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "kubedispatch-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: creating stack dir:", err)
		return 1
	}
	start := time.Now()
	c, err := cluster.Start(context.Background(), cluster.Options{Dir: dir, Bins: bins, SQS: true, PubSub: true, ServiceBus: true, RealNode: opts.RealNode})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: starting the local stack:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: local stack ready in %.1fs (%s)\n", time.Since(start).Seconds(), dir)
	stack = c
	for k, v := range c.Env() {
		os.Setenv(k, v)
	}
	if opts.CRDs != "" {
		cl, err := client.New(c.RESTConfig(), client.Options{})
		if err == nil {
			err = InstallCRDs(context.Background(), cl, filepath.Join(root, opts.CRDs))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e: installing CRDs:", err)
			_ = c.Stop()
			return 1
		}
	}
	stopHook, err := startSBHook()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		_ = c.Stop()
		return 1
	}
	code := m.Run()
	stopHook()
	if err := c.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: stopping the local stack:", err)
		code = 1
	}
	if code == 0 {
		os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "e2e: stack logs kept in %s/logs\n", dir)
	}
	return code
}

// Cluster returns the running stack (nil outside Main).
func Cluster() *cluster.Cluster { return stack }

// F is one test's view of the stack.
type F struct {
	T         testing.TB
	Ctx       context.Context
	Config    *rest.Config
	Client    client.Client
	Clientset kubernetes.Interface
	Namespace string
	SQS       *sqs.Client

	dispatchers []*Dispatcher // started by this test, for WaitDecisionAfter
}

// New returns a framework handle with a fresh namespace (deleted when the test ends) whose default ServiceAccount
// exists, so pods can be created at once.
func New(t testing.TB) *F {
	t.Helper()
	if stack == nil {
		t.Fatal("framework.New called without framework.Main in TestMain")
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg := stack.RESTConfig()
	cl, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatalf("building client: %v", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("building clientset: %v", err)
	}
	f := &F{T: t, Ctx: ctx, Config: cfg, Client: cl, Clientset: cs}
	f.Namespace = "e2e-" + sanitize(t.Name(), 40) + "-" + randSuffix()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.Namespace}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %s: %v", f.Namespace, err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Namespaces().Delete(context.Background(), f.Namespace, metav1.DeleteOptions{})
	})
	f.Eventually("default ServiceAccount in "+f.Namespace, time.Minute, func() (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(f.Namespace).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if stack.SQSEndpoint != "" {
		f.SQS = NewSQSClient(stack.SQSEndpoint)
	}
	return f
}

// NewSQSClient returns an SQS client for moto at endpoint.
func NewSQSClient(endpoint string) *sqs.Client {
	return sqs.New(sqs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
}

// PubSub returns a Pub/Sub client on the emulator, closed when the test ends.
func (f *F) PubSub() *pubsub.Client {
	f.T.Helper()
	if stack.PubSubHost == "" {
		f.T.Fatal("the Pub/Sub emulator is not running")
	}
	c, err := pubsub.NewClient(f.Ctx, PubSubProject)
	if err != nil {
		f.T.Fatalf("building Pub/Sub client: %v", err)
	}
	f.T.Cleanup(func() { c.Close() })
	return c
}

// CreateQueue creates an SQS queue named after the test and returns its URL.
func (f *F) CreateQueue(name string, attrs map[string]string) string {
	f.T.Helper()
	out, err := f.SQS.CreateQueue(f.Ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + "-" + randSuffix()), Attributes: attrs})
	if err != nil {
		f.T.Fatalf("creating SQS queue %s: %v", name, err)
	}
	return *out.QueueUrl
}

// SendMessages sends n messages with bodies "<prefix>-<i>".
func (f *F) SendMessages(queueURL string, n int, prefix string) {
	f.T.Helper()
	for i := range n {
		if _, err := f.SQS.SendMessage(f.Ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queueURL), MessageBody: aws.String(fmt.Sprintf("%s-%d", prefix, i))}); err != nil {
			f.T.Fatalf("sending message %d: %v", i, err)
		}
	}
}

// Eventually polls cond every 200 ms until it returns true or timeout passes (then the test fails with what, the
// last error and the time waited). Deadlines should be generous: machines here are small and shared.
func (f *F) Eventually(what string, timeout time.Duration, cond func() (bool, error)) {
	f.T.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		if time.Now().After(deadline) {
			f.T.Fatalf("waiting %s for %s: timed out (last error: %v)", timeout, what, last)
		}
		select {
		case <-f.Ctx.Done():
			f.T.Fatalf("waiting for %s: %v", what, f.Ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func sanitize(s string, max int) string {
	s = strings.ToLower(s)
	var b strings.Builder
	for _, r := range s {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else if b.Len() > 0 && !strings.HasSuffix(b.String(), "-") {
			b.WriteByte('-')
		}
		if b.Len() >= max {
			break
		}
	}
	return strings.Trim(b.String(), "-")
}

func randSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
