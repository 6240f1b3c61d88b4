//go:build unix

package sbfake

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long Start waits for the fake to print its ports (node starts in well under a second; this
// allows for a loaded machine).
const startTimeout = 30 * time.Second

// Fake is a fake Service Bus namespace started by Start.
type Fake struct {
	// AMQPAddr is the AMQP listener, "127.0.0.1:port"; see ConnectionString.
	AMQPAddr string
	// Control is the control API client.
	Control *Control

	mu     sync.Mutex
	output strings.Builder
}

// ConnectionString returns an azservicebus connection string for this fake with the given SAS key name and key.
func (f *Fake) ConnectionString(keyName, key string) string {
	return ConnectionString(f.AMQPAddr, keyName, key)
}

// Output returns what the fake has printed so far.
func (f *Fake) Output() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.output.String()
}

// Start runs the fake in node for the length of the test and returns once it listens. It fails the test if node or
// rhea is missing (run `make prereqs`) or the fake does not start. When the test ends the fake is killed and waited
// for; if the test failed, its output is logged. The fake also exits if the test process dies without cleaning up.
func Start(t testing.TB) *Fake {
	t.Helper()
	dir := t.TempDir()
	scriptPath := filepath.Join(dir, "fake.js")
	if err := os.WriteFile(scriptPath, script, 0o644); err != nil {
		t.Fatalf("starting the Service Bus fake: writing its script: %v", err)
	}
	bin, args, env, err := Command(scriptPath)
	if err != nil {
		t.Fatalf("starting the Service Bus fake: %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), append(env, "SBFAKE_EXIT_ON_STDIN_EOF=1")...)
	// A process group of its own, so that the kill reaches anything node starts.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// The fake exits when its standard input closes: this pipe's write end lives as long as this test process.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("starting the Service Bus fake: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("starting the Service Bus fake: %v", err)
	}
	f := &Fake{}
	cmd.Stderr = writerFunc(f.record)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the Service Bus fake (%s): %v", bin, err)
	}

	ports := make(chan Ports, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		found := false
		for sc.Scan() {
			line := sc.Text()
			if p, ok := parsePorts(line); ok && !found {
				found = true
				ports <- p
			}
			_, _ = f.record([]byte(line + "\n"))
		}
	}()
	exited := make(chan struct{})
	go func() {
		<-copied // Wait must not close stdout while it is read
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		_ = stdin.Close()
		if t.Failed() {
			t.Logf("Service Bus fake output:\n%s", f.Output())
		}
	})

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case p := <-ports:
		f.AMQPAddr = "127.0.0.1:" + strconv.Itoa(p.AMQP)
		f.Control = NewControl(fmt.Sprintf("http://127.0.0.1:%d", p.Control))
		return f
	case <-exited:
		t.Fatalf("starting the Service Bus fake: node exited before listening; output:\n%s", f.Output())
	case <-timer.C:
		t.Fatalf("starting the Service Bus fake: no ports line within %v; output:\n%s", startTimeout, f.Output())
	}
	return nil
}

func (f *Fake) record(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.output.Write(b)
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(b []byte) (int, error) { return w(b) }
