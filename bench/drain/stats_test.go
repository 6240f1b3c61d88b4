package main

import (
	"github.com/kubedispatch/kubedispatch/bench/internal/benchkit"
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

func TestRefillDelays(t *testing.T) {
	tests := map[string]struct {
		created, finished []time.Time
		max               int
		want              []time.Duration
	}{
		"nothing finished": {
			created: times(0, 0, 0), max: 2, want: nil,
		},
		"every finish refilled": {
			created: times(0, 0, 11.5, 12), finished: times(11, 11.5, 23, 23.5), max: 2,
			want: secs(0.5, 0.5),
		},
		"unsorted input": {
			created: times(12, 0, 11.5, 0), finished: times(23.5, 11.5, 11, 23), max: 2,
			want: secs(0.5, 0.5),
		},
		"refill waits for the poll": {
			created: times(0, 30), finished: times(11, 41), max: 1,
			want: secs(19),
		},
		"fewer Jobs than the cap": {
			created: times(0, 0), finished: times(10, 10), max: 10, want: nil,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, refillDelays(tc.created, tc.finished, tc.max)); diff != "" {
				t.Errorf("refillDelays (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	tests := map[string]struct {
		ds   []time.Duration
		p    float64
		want time.Duration
	}{
		"empty":          {ds: nil, p: 50, want: 0},
		"one":            {ds: secs(3), p: 90, want: secs(3)[0]},
		"median of four": {ds: secs(4, 1, 3, 2), p: 50, want: secs(2)[0]},
		"p90 of ten":     {ds: secs(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), p: 90, want: secs(9)[0]},
		"max":            {ds: secs(1, 5, 2), p: 100, want: secs(5)[0]},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, benchkit.Percentile(tc.ds, tc.p)); diff != "" {
				t.Errorf("percentile (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLifetimes(t *testing.T) {
	created := map[string]time.Time{"a": at(0), "b": at(1), "c": at(2)}
	finished := map[string]time.Time{"a": at(11), "c": at(14)}
	got := benchkit.Percentile(lifetimes(created, finished), 100)
	if diff := cmp.Diff(secs(12)[0], got); diff != "" {
		t.Errorf("longest lifetime (-want +got):\n%s", diff)
	}
	if n := len(lifetimes(created, finished)); n != 2 {
		t.Errorf("got %d lifetimes, want 2 (b never finished)", n)
	}
}
