package framework

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// PID is the process id of the dispatcher.
func (d *Dispatcher) PID() int { return d.cmd.Process.Pid }

// Exited reports whether the dispatcher process has ended.
func (d *Dispatcher) Exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// RSS returns the dispatcher's resident set size in bytes (VmRSS of /proc/<pid>/status).
func (d *Dispatcher) RSS() (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(d.PID()) + "/status")
	if err != nil {
		return 0, fmt.Errorf("reading the dispatcher's /proc status: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(v) // "123456 kB"
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("unexpected VmRSS line %q", line)
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("unexpected VmRSS line %q: %w", line, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status (has the process exited?)", d.PID())
}

// MetricSum reads the dispatcher's /metrics and sums the samples of name whose labels include match (see SumSamples).
func (d *Dispatcher) MetricSum(name string, match map[string]string) (float64, error) {
	text, err := d.Metrics()
	if err != nil {
		return 0, err
	}
	return SumSamples(text, name, match)
}

// WaitDispatcherUp waits until the dispatcher serves /metrics, which shows it parsed its flags and started its
// manager. If the process exits first (an unknown flag, a bad kubeconfig) the test fails with its log.
func (f *F) WaitDispatcherUp(d *Dispatcher) {
	f.T.Helper()
	f.Eventually("the dispatcher to serve /metrics", 2*time.Minute, func() (bool, error) {
		f.T.Helper()
		f.RequireRunning(d)
		_, err := d.Metrics()
		return err == nil, err
	})
}

// RequireRunning fails the test at once, with the tail of the dispatcher's log, if the dispatcher has exited. Call
// it inside long waits so a crash is reported as such, not as a timeout.
func (f *F) RequireRunning(d *Dispatcher) {
	f.T.Helper()
	if !d.Exited() {
		return
	}
	b, _ := os.ReadFile(d.LogPath)
	f.T.Fatalf("the dispatcher exited (%s); last lines of its log:\n%s", d.cmd.ProcessState, tailBytes(b, 4000))
}
