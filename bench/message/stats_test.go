package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func at(s float64) time.Time {
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(s * float64(time.Second)))
}

func times(ss ...float64) []time.Time {
	var out []time.Time
	for _, s := range ss {
		out = append(out, at(s))
	}
	return out
}

func secs(ss ...float64) []time.Duration {
	var out []time.Duration
	for _, s := range ss {
		out = append(out, time.Duration(s*float64(time.Second)))
	}
	return out
}

func TestKthPairs(t *testing.T) {
	tests := map[string]struct {
		sent, created []time.Time
		want          []time.Duration
	}{
		"in order":            {sent: times(0, 1, 2), created: times(0.5, 1.5, 2.5), want: secs(0.5, 0.5, 0.5)},
		"unsorted input":      {sent: times(2, 0, 1), created: times(2.5, 1.5, 0.5), want: secs(0.5, 0.5, 0.5)},
		"one poll for many":   {sent: times(0, 1, 2, 3), created: times(5, 5, 5, 5), want: secs(5, 4, 3, 2)},
		"more Jobs than sent": {sent: times(0), created: times(1, 2), want: secs(1)},
		"no Jobs":             {sent: times(0, 1), created: nil, want: []time.Duration{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, kthPairs(tc.sent, tc.created)); diff != "" {
				t.Errorf("kthPairs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSummarise(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 200; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	want := latency{N: 200, P50: 0.1, P99: 0.198, Max: 0.2}
	if diff := cmp.Diff(want, summarise(ds)); diff != "" {
		t.Errorf("summarise (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(latency{}, summarise(nil)); diff != "" {
		t.Errorf("summarise(nil) (-want +got):\n%s", diff)
	}
}
