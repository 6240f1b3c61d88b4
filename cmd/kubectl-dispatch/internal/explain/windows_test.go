package explain

import (
	"strings"
	"testing"
	"time"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
)

// Explain applies capacity windows as the dispatcher does: while a window is open its max replaces the spec's, and
// the explanation names it and the next change.
func TestExplainCapacityWindow(t *testing.T) {
	withWindow := func(sj *v1alpha1.ScaledJob) {
		sj.Spec.CapacityWindows = []v1alpha1.CapacityWindow{{Name: "nightly-etl", Timezone: "Etc/UTC", Start: "0 1 * * *", End: "0 5 * * *", MaxReplicaCount: 50}}
	}
	tests := map[string]struct {
		now        time.Time
		wantCreate int64
		wantWindow string
		wantNext   string
	}{
		"inside the window: its max": {
			now: time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC), wantCreate: 50,
			wantWindow: "window nightly-etl open until 2026-03-01 05:00 Etc/UTC: max 50", wantNext: "window nightly-etl closes: max 50 -> 10",
		},
		"outside: the spec's max": {
			now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), wantCreate: 10, wantNext: "window nightly-etl opens: max 10 -> 50",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			x := Explain(Input{ScaledJob: scaledJob(withMax(10), withReading("100", "1"), withWindow), Now: tc.now})
			if x.Create != tc.wantCreate || x.Replicas.Window != tc.wantWindow || !strings.HasPrefix(x.Replicas.NextWindowChange, tc.wantNext) {
				t.Errorf("Explain() create %d, window %q, next %q; want %d, %q, %q...", x.Create, x.Replicas.Window, x.Replicas.NextWindowChange,
					tc.wantCreate, tc.wantWindow, tc.wantNext)
			}
		})
	}
}
