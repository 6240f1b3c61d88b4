package windows

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// An SQS backlog of 50 with spec max 2 and a window of max 10 opening in a minute: 2 unfinished Jobs before, 10
// while open; at the close, drain lets the 10 run on and creates no new Job, terminate deletes the 8 above the
// spec's max at once.
func TestWindowRaisesCapacityThenDrainsOrTerminates(t *testing.T) {
	for name, onClose := range map[string]string{"drain": v1alpha1.OnCloseDrain, "terminate": v1alpha1.OnCloseTerminate} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := framework.New(t)
			url := f.CreateQueue("burst", nil)
			f.SendMessages(url, 50, "m")
			s := nextSlot(70*time.Second, 1)
			b := framework.NewScaledJob(f, "etl").SQS(url, 1).Max(2).Poll(2).RunFor("10m")
			b.ScaledJob.Spec.CapacityWindows = []v1alpha1.CapacityWindow{s.window("nightly-etl", 10, onClose)}
			b.Create()
			f.StartDispatcher()
			p := samplePeak(f, "etl")
			defer p.Stop()

			f.Eventually("2 unfinished Jobs before the window", time.Minute, func() (bool, error) {
				n, _ := unfinished(f, "etl")
				return n == 2, nil
			})
			f.Eventually("status.capacity: max 2 from the spec, nightly-etl opens next", time.Minute, func() (bool, error) {
				st := f.ScaledJob("etl").Status
				c, n := st.Capacity, st.NextWindowChange
				ok := c != nil && c.MaxReplicaCount == 2 && c.MaxFrom == "" &&
					n != nil && n.Window == "nightly-etl" && n.Change == "opens" && n.Time.Time.Equal(s.open)
				return ok, fmt.Errorf("status.capacity %+v, nextWindowChange %+v", c, n)
			})
			waitUntil(f, s.open.Add(-time.Second))
			if got := p.Take(); got > 2 {
				t.Errorf("%d unfinished Jobs before the window opened, spec max is 2", got)
			}

			f.Eventually("10 unfinished Jobs while the window is open", 40*time.Second, func() (bool, error) {
				n, _ := unfinished(f, "etl")
				return n == 10, nil
			})
			f.Eventually("status.capacity: max 10 from nightly-etl, named in the decision", 30*time.Second, func() (bool, error) {
				st := f.ScaledJob("etl").Status
				c, r := st.Capacity, st.LastDecision
				ok := c != nil && c.MaxReplicaCount == 10 && c.MaxFrom == "nightly-etl" && r != nil && strings.Contains(r.Reason, "window nightly-etl open until")
				return ok, fmt.Errorf("status.capacity %+v, lastDecision %+v", c, r)
			})
			waitEvent(f, "etl", "WindowOpened", "nightly-etl")
			waitUntil(f, s.close.Add(-time.Second))
			if got := p.Take(); got > 10 {
				t.Errorf("%d unfinished Jobs in the window, its max is 10", got)
			}

			f.Eventually("the close observed", time.Minute, func() (bool, error) {
				c := f.ScaledJob("etl").Status.Capacity
				return c != nil && c.MaxReplicaCount == 2 && len(c.OpenWindows) == 0, nil
			})
			waitEvent(f, "etl", "WindowClosed", "nightly-etl")
			if onClose == v1alpha1.OnCloseTerminate {
				f.Eventually("the Jobs above max 2 deleted", time.Minute, func() (bool, error) {
					n, _ := unfinished(f, "etl")
					return n <= 2, nil
				})
				waitEvent(f, "etl", "WindowClosedTerminated", "deleted 8")
				// And it stays within the spec's max afterwards.
				ticks := f.Ticks("etl")
				f.WaitTicks("etl", ticks, 3)
				if n, _ := unfinished(f, "etl"); n > 2 {
					t.Errorf("%d unfinished Jobs after the terminating close, want at most 2", n)
				}
				return
			}
			// Drain: the 10 keep running and no Job is added while they do.
			_, total := unfinished(f, "etl")
			ticks := f.Ticks("etl")
			f.WaitTicks("etl", ticks, 3)
			n, after := unfinished(f, "etl")
			if n != 10 || after != total {
				t.Errorf("after a draining close: %d unfinished of %d Jobs (%d before), want the 10 still running and no new Job", n, after, total)
			}
			f.Eventually("the decision says the running Jobs fill the cap", 30*time.Second, func() (bool, error) {
				r := f.ScaledJob("etl").Status.LastDecision
				return r != nil && strings.Contains(r.Reason, "running Jobs fill the cap"), fmt.Errorf("lastDecision %+v", r)
			})
		})
	}
}

// A window that is already open when the dispatcher starts (it was down at the opening) is served: its max
// applies from the first tick.
func TestWindowOpenAtStartIsServed(t *testing.T) {
	t.Parallel()
	f := framework.New(t)
	url := f.CreateQueue("late", nil)
	f.SendMessages(url, 20, "m")
	s := nextSlot(5*time.Second, 3)
	b := framework.NewScaledJob(f, "late").SQS(url, 1).Max(1).Poll(2).RunFor("10m")
	b.ScaledJob.Spec.CapacityWindows = []v1alpha1.CapacityWindow{s.window("burst", 6, "")}
	b.Create()
	waitUntil(f, s.open.Add(2*time.Second))
	f.StartDispatcher()
	f.Eventually("6 unfinished Jobs", time.Minute, func() (bool, error) {
		n, _ := unfinished(f, "late")
		return n == 6, nil
	})
	f.Eventually("status.capacity set by window burst", 30*time.Second, func() (bool, error) {
		c := f.ScaledJob("late").Status.Capacity
		return c != nil && c.MaxFrom == "burst", fmt.Errorf("status.capacity %+v", c)
	})
}

// Bad windows are refused by the API server (start equals end, max above the CRD's maximum, runsPerWindow on a
// queue trigger) or get Ready=False naming the field (an unknown time zone, a bad cron expression); nothing is
// created.
func TestBadWindowsRefused(t *testing.T) {
	t.Parallel()
	f := framework.New(t)
	url := f.CreateQueue("badwin", nil)
	f.SendMessages(url, 3, "m")
	refused := map[string]struct {
		mutate func(b *framework.ScaledJobBuilder)
		want   string
	}{
		"start equals end": {
			mutate: func(b *framework.ScaledJobBuilder) {
				b.ScaledJob.Spec.CapacityWindows = []v1alpha1.CapacityWindow{{Name: "w", Timezone: "Etc/UTC", Start: "0 1 * * *", End: "0 1 * * *", MaxReplicaCount: 5}}
			},
			want: "capacityWindows[0].end",
		},
		"max above the CRD maximum": {
			mutate: func(b *framework.ScaledJobBuilder) {
				b.ScaledJob.Spec.CapacityWindows = []v1alpha1.CapacityWindow{{Name: "w", Timezone: "Etc/UTC", Start: "0 1 * * *", End: "0 2 * * *", MaxReplicaCount: 2000000}}
			},
			want: "capacityWindows[0].maxReplicaCount",
		},
		"runsPerWindow on an SQS trigger": {
			mutate: func(b *framework.ScaledJobBuilder) { b.ScaledJob.Spec.Triggers[0].Metadata["runsPerWindow"] = "3" },
			want:   "runsPerWindow",
		},
		"duplicate window names": {
			mutate: func(b *framework.ScaledJobBuilder) {
				w := v1alpha1.CapacityWindow{Name: "w", Timezone: "Etc/UTC", Start: "0 1 * * *", End: "0 2 * * *", MaxReplicaCount: 5}
				b.ScaledJob.Spec.CapacityWindows = []v1alpha1.CapacityWindow{w, w}
			},
			want: "capacity window names must be unique",
		},
	}
	for name, tc := range refused {
		t.Run(name, func(t *testing.T) {
			b := framework.NewScaledJob(f, "refused").SQS(url, 1)
			tc.mutate(b)
			err := f.Client.Create(f.Ctx, b.ScaledJob)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("create: err = %v, want a refusal naming %q", err, tc.want)
			}
		})
	}

	notReady := map[string]struct {
		window v1alpha1.CapacityWindow
		want   []string
	}{
		"unknown time zone": {
			window: v1alpha1.CapacityWindow{Name: "w", Timezone: "Mars/Olympus", Start: "0 1 * * *", End: "0 2 * * *", MaxReplicaCount: 5},
			want:   []string{"spec.capacityWindows[0].timezone", "Mars/Olympus", "IANA"},
		},
		"bad cron expression": {
			window: v1alpha1.CapacityWindow{Name: "w", Timezone: "Etc/UTC", Start: "61 1 * * *", End: "0 2 * * *", MaxReplicaCount: 5},
			want:   []string{"spec.capacityWindows[0].start", "5-field cron"},
		},
	}
	names := map[string]string{}
	i := 0
	for name, tc := range notReady {
		sjName := "badwin-" + string(rune('a'+i))
		i++
		names[name] = sjName
		b := framework.NewScaledJob(f, sjName).SQS(url, 1).Poll(2).RunFor("10m")
		b.ScaledJob.Spec.CapacityWindows = []v1alpha1.CapacityWindow{tc.window}
		b.Create()
	}
	f.StartDispatcher()
	for name, tc := range notReady {
		t.Run(name, func(t *testing.T) {
			f.WaitReady(names[name], metav1.ConditionFalse, tc.want...)
			// An invalid spec is not ticked again until it is edited: the Ready condition is its last word.
			if n := len(f.JobsOf(names[name])); n != 0 {
				t.Errorf("%d Jobs created for a ScaledJob with a bad window", n)
			}
		})
	}
}
