//go:build unix

package sourcetest

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

const (
	// readyTimeout is how long StartProcess waits for an answer: a JVM emulator on a busy machine needs a while.
	readyTimeout = 2 * time.Minute
	// pollInterval is how often StartProcess asks the server whether it is ready.
	pollInterval = 100 * time.Millisecond
	// startAttempts is how many ports StartProcess tries when the server exits before it answers.
	startAttempts = 3
)

// Process is an external server, such as moto_server or the Pub/Sub emulator, that a test starts with StartProcess.
type Process struct {
	// Name names the server in log and failure messages, e.g. "moto_server".
	Name string
	// Path is the executable.
	Path string
	// Args returns the arguments that make the server listen on host and port.
	Args func(host, port string) []string
	// Env is the server's environment; nil gives it the test's.
	Env []string
	// ReadyPath is the HTTP path that answers 200 OK once the server is ready, e.g. "/".
	ReadyPath string
}

// StartProcess starts p on a free loopback port, in a process group of its own, and returns its host:port once
// ReadyPath answers 200 OK. It polls until then, for up to two minutes. A server that exits before it answers (another
// process took the port) is tried again on another port, up to three times. When the test ends, the whole process
// group is killed and the server waited for; if the test failed, the server's output is logged. A server that does not
// start fails the test with its output.
func StartProcess(t testing.TB, p Process) string {
	t.Helper()
	for i := range startAttempts {
		if addr, ok := tryStartProcess(t, p); ok {
			return addr
		}
		t.Logf("%s exited before answering (attempt %d of %d), trying another port", p.Name, i+1, startAttempts)
	}
	t.Fatalf("%s did not start after %d attempts", p.Name, startAttempts)
	return ""
}

// tryStartProcess starts p once; it returns false if the process exits before it answers.
func tryStartProcess(t testing.TB, p Process) (string, bool) {
	t.Helper()
	addr := FreeAddr(t)
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("splitting %s: %v", addr, err)
	}
	logPath := filepath.Join(t.TempDir(), "output.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("creating the log of %s: %v", p.Name, err)
	}
	defer func() { _ = logFile.Close() }()
	output := func() string {
		b, err := os.ReadFile(logPath)
		if err != nil {
			return "(unreadable: " + err.Error() + ")"
		}
		return string(b)
	}

	cmd := exec.Command(p.Path, p.Args(host, port)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = p.Env
	// A process group of its own, so that killing it also kills what a launcher script or shim started (java, python).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", p.Name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	ready := false
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if ready && t.Failed() {
			t.Logf("%s output:\n%s", p.Name, output())
		}
	})

	url := "http://" + addr + p.ReadyPath
	client := &http.Client{Timeout: time.Second}
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-exited:
			t.Logf("%s output:\n%s", p.Name, output())
			return "", false
		case <-deadline.C:
			t.Fatalf("%s did not answer on %s within %v; output:\n%s", p.Name, url, readyTimeout, output())
		case <-tick.C:
			if resp, err := client.Get(url); err == nil {
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ready = true
					return addr, true
				}
			}
		}
	}
}
