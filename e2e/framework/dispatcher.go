package framework

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
}

// StartDispatcher runs the real dispatcher binary against the stack, watching only the test's namespace and
// holding its leader lease there, so tests do not interfere, with loopback hosts allowed as custom endpoints
// (--allowed-endpoints). Extra flags are appended. It is stopped (SIGTERM) when the test ends unless stopped before.
func (f *F) StartDispatcher(extra ...string) *Dispatcher {
	f.T.Helper()
	return f.StartDispatcherWithEnv(nil, extra...)
}

// StartDispatcherWithEnv is StartDispatcher with extra environment variables (e.g. SSL_CERT_FILE to trust a test
// server's certificate).
func (f *F) StartDispatcherWithEnv(env map[string]string, extra ...string) *Dispatcher {
	f.T.Helper()
	bin, err := DispatcherBinary()
	if err != nil {
		f.T.Fatal(err)
	}
	metrics := freeAddr(f.T)
	args := append([]string{
		"--kubeconfig=" + stack.Kubeconfig,
		"--watch-namespace=" + f.Namespace,
		"--leader-election-namespace=" + f.Namespace,
		"--leader-elect-lease-duration=6s", "--leader-elect-renew-deadline=4s", "--leader-elect-retry-period=1s",
		"--metrics-bind-address=" + metrics,
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
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.T.Fatalf("starting dispatcher: %v", err)
	}
	d := &Dispatcher{cmd: cmd, done: make(chan struct{}), LogPath: logPath, MetricsAddr: metrics}
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

// Metrics returns the text of the dispatcher's /metrics.
func (d *Dispatcher) Metrics() (string, error) {
	resp, err := http.Get("http://" + d.MetricsAddr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	return b.String(), err
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
