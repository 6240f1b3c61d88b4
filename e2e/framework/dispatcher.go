package framework

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/e2e/cluster"
)

// InstallCRDs applies every CRD manifest in dir (deploy/crd) and waits until each is Established.
func InstallCRDs(ctx context.Context, c client.Client, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("finding CRDs in %s: %v", dir, err)
	}
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("reading %s: %w", f, err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096).Decode(&crd); err != nil {
			return fmt.Errorf("decoding %s: %w", f, err)
		}
		u := &unstructured.Unstructured{}
		if err := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096).Decode(&u.Object); err != nil {
			return fmt.Errorf("decoding %s: %w", f, err)
		}
		if err := c.Create(ctx, u); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating CRD %s: %w", crd.Name, err)
		}
		names = append(names, crd.Name)
	}
	deadline := time.Now().Add(time.Minute)
	for _, n := range names {
		for {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
			err := c.Get(ctx, client.ObjectKey{Name: n}, u)
			established := false
			if err == nil {
				conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
				for _, cond := range conds {
					m, _ := cond.(map[string]any)
					if m["type"] == string(apiextensionsv1.Established) && m["status"] == "True" {
						established = true
					}
				}
			}
			if established {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("waiting for CRD %s to be established: %v", n, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// DispatcherBinary builds cmd/dispatcher once per test binary and returns its path.
func DispatcherBinary() (string, error) {
	buildOnce.Do(func() {
		root, err := cluster.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "kubedispatch-bin-")
		if err != nil {
			buildErr = fmt.Errorf("creating build dir: %w", err)
			return
		}
		buildPath = filepath.Join(dir, "dispatcher")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/dispatcher")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building the dispatcher: %w\n%s", err, out)
		}
	})
	return buildPath, buildErr
}

// Dispatcher is a dispatcher process started by a test.
type Dispatcher struct {
	cmd         *exec.Cmd
	done        chan struct{}
	LogPath     string
	MetricsAddr string

	secureMetrics bool   // /metrics is HTTPS behind the authn/authz filter
	metricsToken  string // the bearer token Metrics sends when secureMetrics
}

// DispatcherOptions say how StartDispatcherWith runs the dispatcher.
type DispatcherOptions struct {
	// Env holds extra environment variables (e.g. SSL_CERT_FILE to trust a test server's certificate).
	Env map[string]string
	// Kubeconfig replaces the stack's admin kubeconfig, e.g. with one holding a ServiceAccount token, so the
	// dispatcher runs with that account's RBAC only.
	Kubeconfig string
	// SecureMetrics serves /metrics as the dispatcher does by default in production: HTTPS, to callers the API server
	// authenticates and authorizes. Without it the framework passes --metrics-secure=false (plain HTTP, open), which
	// is what every test that only reads metrics wants.
	SecureMetrics bool
	// MetricsToken is the bearer token that Metrics (and so WaitDispatcherUp, MetricSum, Ticks) sends with
	// SecureMetrics: a token allowed GET /metrics.
	MetricsToken string
}

// StartDispatcher runs the real dispatcher binary against the stack, watching only the test's namespace and
// holding its leader lease there, so tests do not interfere, with loopback hosts allowed as custom endpoints
// (--allowed-endpoints) and /metrics on plain HTTP (--metrics-secure=false). Extra flags are appended. It is stopped
// (SIGTERM) when the test ends unless stopped before.
func (f *F) StartDispatcher(extra ...string) *Dispatcher {
	f.T.Helper()
	return f.StartDispatcherWith(DispatcherOptions{}, extra...)
}

// StartDispatcherWithEnv is StartDispatcher with extra environment variables (e.g. SSL_CERT_FILE to trust a test
// server's certificate).
func (f *F) StartDispatcherWithEnv(env map[string]string, extra ...string) *Dispatcher {
	f.T.Helper()
	return f.StartDispatcherWith(DispatcherOptions{Env: env}, extra...)
}

// StartDispatcherWith is StartDispatcher with the options o.
func (f *F) StartDispatcherWith(o DispatcherOptions, extra ...string) *Dispatcher {
	f.T.Helper()
	bin, err := DispatcherBinary()
	if err != nil {
		f.T.Fatal(err)
	}
	kubeconfig := stack.Kubeconfig
	if o.Kubeconfig != "" {
		kubeconfig = o.Kubeconfig
	}
	metrics := freeAddr(f.T)
	args := append([]string{
		"--kubeconfig=" + kubeconfig,
		"--watch-namespace=" + f.Namespace,
		"--leader-election-namespace=" + f.Namespace,
		"--leader-elect-lease-duration=6s", "--leader-elect-renew-deadline=4s", "--leader-elect-retry-period=1s",
		"--metrics-bind-address=" + metrics,
		"--metrics-secure=" + strconv.FormatBool(o.SecureMetrics),
		"--health-probe-bind-address=0",
		"--namespace=" + f.Namespace,
		"--zap-log-level=debug",
		// The stack's emulators and the tests' fakes listen on loopback. A test may pass the flag again to narrow it
		// (the last one wins).
		"--allowed-endpoints=127.0.0.1:*,localhost:*",
	}, extra...)
	logPath := filepath.Join(f.T.TempDir(), "dispatcher.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		f.T.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = os.Environ()
	for k, v := range o.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.T.Fatalf("starting dispatcher: %v", err)
	}
	d := &Dispatcher{cmd: cmd, done: make(chan struct{}), LogPath: logPath, MetricsAddr: metrics,
		secureMetrics: o.SecureMetrics, metricsToken: o.MetricsToken}
	f.dispatchers = append(f.dispatchers, d)
	go func() { _ = cmd.Wait(); logFile.Close(); close(d.done) }()
	f.T.Cleanup(func() {
		d.Stop(syscall.SIGTERM)
		if f.T.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				f.T.Logf("dispatcher log (last 60000 bytes):\n%s", tailBytes(b, 60000))
			}
		}
	})
	return d
}

// Stop sends sig (SIGKILL to simulate a crash) and waits for the process to exit.
func (d *Dispatcher) Stop(sig syscall.Signal) {
	select {
	case <-d.done:
		return
	default:
	}
	_ = syscall.Kill(-d.cmd.Process.Pid, sig)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
	}
}

// Metrics returns the text of the dispatcher's /metrics: over plain HTTP, or with DispatcherOptions.SecureMetrics
// over HTTPS (the certificate is self-signed) with the bearer token DispatcherOptions.MetricsToken. A status other
// than 200 is an error.
func (d *Dispatcher) Metrics() (string, error) {
	url, token := "http://"+d.MetricsAddr+"/metrics", ""
	if d.secureMetrics {
		url, token = "https://"+d.MetricsAddr+"/metrics", d.metricsToken
	}
	status, body, err := GetMetrics(url, token)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("GET %s: status %d: %s", url, status, tailBytes([]byte(body), 500))
	}
	return body, nil
}

// metricsClient trusts any certificate: the dispatcher's HTTPS /metrics has a self-signed one.
var metricsClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a test reading a self-signed endpoint
}}

// GetMetrics GETs url (an http:// or https:// /metrics; any certificate is accepted) with the bearer token, when not
// empty, and returns the status code and body.
func GetMetrics(url, token string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String(), err
}

func freeAddr(t testing.TB) string {
	addr, err := cluster.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

func tailBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
