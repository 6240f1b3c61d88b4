package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kubedispatch/kubedispatch/bench/internal/benchkit"
	"github.com/kubedispatch/kubedispatch/e2e/cluster"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat on Linux.
const clockTicks = 100

// cpuSeconds returns the user + system CPU time of process pid.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the dispatcher's CPU time: %w", err)
	}
	// The command name is in parentheses and may hold spaces; after it come state (field 3) ... utime (14) and
	// stime (15).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("reading the dispatcher's CPU time: unexpected /proc stat format")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("reading the dispatcher's CPU time: unexpected /proc stat format")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("reading the dispatcher's CPU time: %w", err)
	}
	return float64(utime+stime) / clockTicks, nil
}

// statusMiB returns a kB field of /proc/<pid>/status (VmRSS, VmHWM) in MiB.
func statusMiB(pid int, field string) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the dispatcher's %s: %w", field, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), field+":")
		if !ok {
			continue
		}
		kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parsing the dispatcher's %s: %w", field, err)
		}
		return float64(kib) / 1024, nil
	}
	return 0, fmt.Errorf("reading the dispatcher's %s: no such line in /proc/%d/status", field, pid)
}

// dispatcher is the dispatcher under test, with its metrics address and the largest VmRSS sampled.
type dispatcher struct {
	*benchkit.Dispatcher
	metricsAddr string

	mu      sync.Mutex
	peakMiB float64
}

// startDispatcher runs bin on namespace ns with /metrics on a free port; kubeconfig, when set, replaces the stack's
// (the later --kubeconfig wins). It returns once /metrics answers.
func startDispatcher(ctx context.Context, c *cluster.Cluster, bin, dir, ns, kubeconfig string) (*dispatcher, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"--watch-namespace=" + ns, "--namespace=" + ns, "--metrics-bind-address=" + addr}
	if kubeconfig != "" {
		args = append(args, "--kubeconfig="+kubeconfig)
	}
	bd, err := benchkit.StartDispatcher(c, bin, dir, args...)
	if err != nil {
		return nil, err
	}
	d := &dispatcher{Dispatcher: bd, metricsAddr: addr}
	if err := benchkit.WaitUntil(ctx, "the dispatcher's /metrics", 2*time.Minute, 200*time.Millisecond, d.Exited, func() (bool, error) {
		_, err := d.metrics(ctx)
		return err == nil, err
	}); err != nil {
		d.Stop()
		return nil, err
	}
	return d, nil
}

// metrics scrapes the dispatcher's /metrics.
func (d *dispatcher) metrics(ctx context.Context) (metricSet, error) {
	return scrape(ctx, "http://"+d.metricsAddr+"/metrics", "")
}

// sampleRSS records VmRSS if it is the largest so far, and returns it.
func (d *dispatcher) sampleRSS() (float64, error) {
	rss, err := statusMiB(d.Pid(), "VmRSS")
	if err != nil {
		return 0, err
	}
	d.mu.Lock()
	d.peakMiB = max(d.peakMiB, rss)
	d.mu.Unlock()
	return rss, nil
}

// resetPeak forgets the largest VmRSS sampled so far.
func (d *dispatcher) resetPeak() {
	d.mu.Lock()
	d.peakMiB = 0
	d.mu.Unlock()
}

// peak is the largest VmRSS sampled since the last resetPeak.
func (d *dispatcher) peak() float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.peakMiB
}
