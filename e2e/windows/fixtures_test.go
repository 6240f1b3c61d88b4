package windows

import (
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// slot is a window on the real clock: it opens at a whole minute at least lead from now and lasts length whole
// minutes. Cron has minute granularity, so this is as close as a window can be.
type slot struct {
	open, close time.Time
}

func nextSlot(lead time.Duration, length int) slot {
	open := time.Now().UTC().Add(lead + time.Minute - time.Second).Truncate(time.Minute)
	return slot{open: open, close: open.Add(time.Duration(length) * time.Minute)}
}

// cronAt is the five-field cron expression firing at t's minute every day, in UTC.
func cronAt(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("%d %d * * *", t.Minute(), t.Hour())
}

func (s slot) window(name string, maxR int32, onClose string) v1alpha1.CapacityWindow {
	return v1alpha1.CapacityWindow{Name: name, Timezone: "Etc/UTC", Start: cronAt(s.open), End: cronAt(s.close), MaxReplicaCount: maxR, OnClose: onClose}
}

// waitUntil waits for the real clock to pass t (the schedule itself is the condition here).
func waitUntil(f *framework.F, t time.Time) {
	f.T.Helper()
	f.Eventually("the clock to pass "+t.Format(time.TimeOnly), time.Until(t)+time.Minute, func() (bool, error) {
		return time.Now().After(t), nil
	})
}

// unfinished counts the ScaledJob's unfinished Jobs and all its Jobs.
func unfinished(f *framework.F, name string) (open, total int) {
	jobs := f.JobsOf(name)
	return framework.Unfinished(jobs), len(jobs)
}

// peak samples the most unfinished Jobs of a ScaledJob seen between calls to Reset and Max.
type peak struct {
	mu   sync.Mutex
	max  int
	stop chan struct{}
	done chan struct{}
}

func samplePeak(f *framework.F, name string) *peak {
	p := &peak{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			n, _ := unfinished(f, name)
			p.mu.Lock()
			p.max = max(p.max, n)
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-f.Ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return p
}

// Take returns the peak since the last Take and starts a new period.
func (p *peak) Take() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.max
	p.max = 0
	return m
}

func (p *peak) Stop() {
	close(p.stop)
	<-p.done
}

// events returns the messages of the events with reason on the ScaledJob name.
func events(f *framework.F, name, reason string) []string {
	f.T.Helper()
	var list corev1.EventList
	if err := f.Client.List(f.Ctx, &list, client.InNamespace(f.Namespace)); err != nil {
		f.T.Fatalf("listing events: %v", err)
	}
	var out []string
	for _, e := range list.Items {
		if e.Reason == reason && e.InvolvedObject.Name == name {
			out = append(out, e.Message)
		}
	}
	return out
}

func waitEvent(f *framework.F, name, reason, contains string) {
	f.T.Helper()
	f.Eventually(fmt.Sprintf("a %s event on %s", reason, name), 2*time.Minute, func() (bool, error) {
		for _, m := range events(f, name, reason) {
			if strings.Contains(m, contains) {
				return true, nil
			}
		}
		return false, nil
	})
}
