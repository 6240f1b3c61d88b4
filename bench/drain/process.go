package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubedispatch/kubedispatch/e2e/cluster"
)

// dispatcher is the dispatcher process under test.
type dispatcher struct {
	cmd      *exec.Cmd
	done     chan struct{}
	logPath  string
	stopOnce sync.Once
}

// startDispatcher runs bin against the stack, watching namespaces, without leader election or listeners.
func startDispatcher(c *cluster.Cluster, bin, dir string, namespaces []string) (*dispatcher, error) {
	logPath := filepath.Join(dir, "logs", "dispatcher.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating the dispatcher log: %w", err)
	}
	cmd := exec.Command(bin,
		"--kubeconfig="+c.Kubeconfig,
		"--watch-namespace="+strings.Join(namespaces, ","),
		"--namespace="+namespaces[0],
		"--leader-elect=false",
		"--metrics-bind-address=0",
		"--health-probe-bind-address=0",
	)
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
	d := &dispatcher{cmd: cmd, done: make(chan struct{}), logPath: logPath}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(d.done)
	}()
	return d, nil
}

// exited returns an error once the process has exited.
func (d *dispatcher) exited() error {
	select {
	case <-d.done:
		return fmt.Errorf("the dispatcher exited (%v); see %s", d.cmd.ProcessState, d.logPath)
	default:
		return nil
	}
}

// stop sends SIGTERM to the dispatcher's process group and waits for it, killing it after 20 s.
func (d *dispatcher) stop() {
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
