package capacity

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/sources"
)

func TestRuns(t *testing.T) {
	start := time.Date(2026, 12, 3, 1, 0, 0, 0, time.UTC)
	end := start.Add(2 * time.Minute)
	open := sources.Occurrence{Start: start, End: end, Open: true, Runs: 3}
	closed := sources.Occurrence{Start: start, End: end, Runs: 3}
	withDeadline := func(o sources.Occurrence, d time.Duration) sources.Occurrence { o.StartingDeadline = d; return o }
	record := func(created int32, missed bool) *v1alpha1.WindowRun {
		return &v1alpha1.WindowRun{Trigger: "nightly", Occurrence: metav1.NewTime(start), Created: created, Missed: missed, Message: "x"}
	}
	older := &v1alpha1.WindowRun{Trigger: "nightly", Occurrence: metav1.NewTime(start.Add(-24 * time.Hour)), Created: 3, Message: "x"}
	sjCreated := start.Add(-48 * time.Hour)

	tests := map[string]struct {
		in          RunsInputs
		wantWant    int64
		wantServing bool
		wantMissed  bool
		wantCreated int32 // of the record written; -1 when none is written
	}{
		"first sight of an open occurrence: all runs": {
			in: RunsInputs{Occurrence: open, Now: start.Add(5 * time.Second), Record: older}, wantWant: 3, wantServing: true, wantCreated: 0,
		},
		"served in part: the rest": {
			in: RunsInputs{Occurrence: open, Now: start.Add(time.Minute), Record: record(2, false)}, wantWant: 1, wantServing: true, wantCreated: -1,
		},
		"served fully: none, whatever the poll": {
			in: RunsInputs{Occurrence: open, Now: start.Add(time.Minute), Record: record(3, false)}, wantCreated: -1,
		},
		"the cache knows more than a lost status write": {
			in: RunsInputs{Occurrence: open, Now: start.Add(time.Minute), Record: record(1, false), Created: 3}, wantCreated: 3,
		},
		"a restart inside the window: the record holds": {
			in: RunsInputs{Occurrence: open, Now: start.Add(90 * time.Second), Record: record(3, false)}, wantCreated: -1,
		},
		"a stale reading after the close: nothing more": {
			in: RunsInputs{Occurrence: open, Now: end.Add(time.Second), Record: record(2, false)}, wantCreated: -1,
		},
		"down across the whole window, no deadline: missed": {
			in: RunsInputs{Occurrence: closed, Now: end.Add(time.Hour), Record: older, ScaledJobCreated: sjCreated}, wantMissed: true, wantCreated: 0,
		},
		"down across the whole window, within the deadline: runs late": {
			in:       RunsInputs{Occurrence: withDeadline(closed, 5*time.Minute), Now: end.Add(time.Minute), Record: older, ScaledJobCreated: sjCreated},
			wantWant: 3, wantServing: true, wantCreated: 0,
		},
		"down across the whole window, beyond the deadline: missed": {
			in:         RunsInputs{Occurrence: withDeadline(closed, 30*time.Second), Now: end.Add(time.Minute), Record: older, ScaledJobCreated: sjCreated},
			wantMissed: true, wantCreated: 0,
		},
		"started inside the window but beyond its deadline: missed (CronJob's rule)": {
			in:         RunsInputs{Occurrence: withDeadline(open, 30*time.Second), Now: start.Add(time.Minute), ScaledJobCreated: sjCreated},
			wantMissed: true, wantCreated: 0,
		},
		"being served when the deadline passes: goes on while open": {
			in:       RunsInputs{Occurrence: withDeadline(open, 30*time.Second), Now: start.Add(time.Minute), Record: record(1, false)},
			wantWant: 2, wantServing: true, wantCreated: -1,
		},
		"missed once: stays missed, no second event": {
			in: RunsInputs{Occurrence: closed, Now: end.Add(2 * time.Hour), Record: record(0, true)}, wantCreated: -1,
		},
		"an occurrence that closed before the ScaledJob existed is not missed": {
			in: RunsInputs{Occurrence: closed, Now: end.Add(time.Hour), ScaledJobCreated: end.Add(time.Minute)}, wantCreated: -1,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tc.in.Trigger = "nightly"
			out := Runs(tc.in)
			got := struct {
				Want            int64
				Serving, Missed bool
				Created         int32
			}{out.Want, out.Serving, out.Missed, -1}
			if out.Record != nil {
				got.Created = out.Record.Created
				if !out.Record.Occurrence.Time.Equal(start) || out.Record.Message == "" {
					t.Errorf("record = %+v, want the occurrence at %s with a message", out.Record, start)
				}
			}
			want := struct {
				Want            int64
				Serving, Missed bool
				Created         int32
			}{tc.wantWant, tc.wantServing, tc.wantMissed, tc.wantCreated}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Runs() (-want +got):\n%s", diff)
			}
		})
	}
}
