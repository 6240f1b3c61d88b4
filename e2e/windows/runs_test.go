package windows

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// cronRuns builds a ScaledJob with one cron trigger over slot s and runsPerWindow runs.
func cronRuns(f *framework.F, name string, s slot, runs string, extra map[string]string) *framework.ScaledJobBuilder {
	md := map[string]string{"timezone": "Etc/UTC", "start": cronAt(s.open), "end": cronAt(s.close), "desiredReplicas": "3", "runsPerWindow": runs}
	for k, v := range extra {
		md[k] = v
	}
	return framework.NewScaledJob(f, name).Trigger("cron", md, nil).Poll(5).RunFor("5s")
}

// runsPerWindow 3 with pods of 5 s and a poll of 5 s over a two-minute window: exactly 3 Jobs (KEDA's cron
// trigger keeps desiredReplicas Jobs alive, so it would create about 3 per pod lifetime), and a dispatcher restart
// inside the window creates none.
func TestRunsPerWindowExactlyN(t *testing.T) {
	t.Parallel()
	f := framework.New(t)
	s := nextSlot(20*time.Second, 2)
	cronRuns(f, "nightly", s, "3", nil).Create()
	d := f.StartDispatcher()
	waitUntil(f, s.open)
	f.Eventually("3 Jobs for the window", time.Minute, func() (bool, error) {
		return len(f.JobsOf("nightly")) >= 3, nil
	})
	f.Eventually("the occurrence recorded in status", time.Minute, func() (bool, error) {
		runs := f.ScaledJob("nightly").Status.WindowRuns
		return len(runs) == 1 && runs[0].Created == 3 && runs[0].Occurrence.Time.Equal(s.open), nil
	})
	// A restart inside the window (the Jobs have finished by then: a new dispatcher sees only history).
	f.Eventually("the 3 Jobs finished", time.Minute, func() (bool, error) {
		n, _ := unfinished(f, "nightly")
		return n == 0, nil
	})
	d.Stop(syscall.SIGTERM)
	if !time.Now().Before(s.close.Add(-30 * time.Second)) {
		t.Fatalf("the window closes at %s: too late to restart inside it (a slow machine); the test needs a later slot", s.close)
	}
	d2 := f.StartDispatcher()
	f.WaitDispatcherUp(d2)
	waitUntil(f, s.close.Add(10*time.Second))
	jobs := f.JobsOf("nightly")
	if len(jobs) != 3 {
		t.Fatalf("%d Jobs for one window occurrence with runsPerWindow 3, want exactly 3", len(jobs))
	}
	for _, j := range jobs {
		if got := j.Annotations[v1alpha1.AnnotationWindowOccurrence]; got != s.open.UTC().Format(time.RFC3339) {
			t.Errorf("Job %s annotation %s = %q, want the occurrence %s", j.Name, v1alpha1.AnnotationWindowOccurrence, got, s.open.Format(time.RFC3339))
		}
	}
}

// The dispatcher down across a window's opening and started inside it: the occurrence is served late.
func TestRunsPerWindowServedAfterLateStart(t *testing.T) {
	t.Parallel()
	f := framework.New(t)
	s := nextSlot(5*time.Second, 2)
	cronRuns(f, "late", s, "2", nil).Create()
	waitUntil(f, s.open.Add(15*time.Second))
	f.StartDispatcher()
	f.Eventually("2 Jobs for the window", time.Minute, func() (bool, error) {
		return len(f.JobsOf("late")) == 2, nil
	})
}

// The dispatcher down across a whole runsPerWindow window with startingDeadlineSeconds 30: no Jobs, a
// MissedWindow event and a status line.
func TestRunsPerWindowMissedBeyondDeadline(t *testing.T) {
	t.Parallel()
	f := framework.New(t)
	s := nextSlot(5*time.Second, 1)
	cronRuns(f, "missed", s, "2", map[string]string{"startingDeadlineSeconds": "30"}).Create()
	waitUntil(f, s.close.Add(2*time.Second))
	f.StartDispatcher()
	waitEvent(f, "missed", "MissedWindow", "startingDeadlineSeconds")
	f.Eventually("the occurrence marked missed in status", 30*time.Second, func() (bool, error) {
		runs := f.ScaledJob("missed").Status.WindowRuns
		return len(runs) == 1 && runs[0].Missed && strings.Contains(runs[0].Message, "no Jobs were created"), fmt.Errorf("status.windowRuns %+v", runs)
	})
	ticks := f.Ticks("missed")
	f.WaitTicks("missed", ticks, 2)
	if n := len(f.JobsOf("missed")); n != 0 {
		t.Errorf("%d Jobs for a missed window, want 0", n)
	}
	if n := len(events(f, "missed", "MissedWindow")); n != 1 {
		t.Errorf("%d MissedWindow events, want 1", n)
	}
}
