package benchkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/kubedispatch/kubedispatch/e2e/cluster"
)

// Dispatcher is the dispatcher process under test.
type Dispatcher struct {
	// LogPath is the file that holds the process's output.
	LogPath string

	cmd      *exec.Cmd
	done     chan struct{}
	stopOnce sync.Once
}

// StartDispatcher runs bin against the stack without leader election or a health listener, with its output in
// dir/logs/dispatcher.log; args are the other flags.
func StartDispatcher(c *cluster.Cluster, bin, dir string, args ...string) (*Dispatcher, error) {
	logPath := filepath.Join(dir, "logs", "dispatcher.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating the dispatcher log: %w", err)
	}
	cmd := exec.Command(bin, append([]string{
		"--kubeconfig=" + c.Kubeconfig,
		"--leader-elect=false",
		"--health-probe-bind-address=0",
		"--metrics-secure=false", // the benchmarks scrape /metrics over plain HTTP on loopback
	}, args...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = os.Environ()
	for k, v := range c.Env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// Its own process group: a Ctrl-C on the terminal reaches only the benchmark, which then stops it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting the dispatcher: %w", err)
	}
	d := &Dispatcher{LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(d.done)
	}()
	return d, nil
}

// Pid is the process's id.
func (d *Dispatcher) Pid() int { return d.cmd.Process.Pid }

// Done is closed when the process has exited.
func (d *Dispatcher) Done() <-chan struct{} { return d.done }

// Exited returns an error once the process has exited.
func (d *Dispatcher) Exited() error {
	select {
	case <-d.done:
		return fmt.Errorf("the dispatcher exited (%v); see %s", d.cmd.ProcessState, d.LogPath)
	default:
		return nil
	}
}

// Stop sends SIGTERM to the dispatcher's process group and waits for it, killing it after 20 s.
func (d *Dispatcher) Stop() {
	d.stopOnce.Do(func() {
		select {
		case <-d.done:
			return
		default:
		}
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			<-d.done
		}
	})
}
