package main

import (
	"github.com/kubedispatch/kubedispatch/bench/internal/benchkit"
	"time"
)

// latency summarises a set of latencies, in seconds.
type latency struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50Seconds"`
	P99 float64 `json:"p99Seconds"`
	Max float64 `json:"maxSeconds"`
}

// summarise returns the nearest-rank p50 and p99 and the largest of ds.
func summarise(ds []time.Duration) latency {
	return latency{N: len(ds), P50: benchkit.Percentile(ds, 50).Seconds(), P99: benchkit.Percentile(ds, 99).Seconds(), Max: benchkit.Percentile(ds, 100).Seconds()}
}

// kthPairs sorts both slices (copies) and returns, for k below the shorter length, the k-th Job's time minus the
// k-th message's: the latency when Jobs are not bound to messages, as if the queue were served in order.
func kthPairs(sent, created []time.Time) []time.Duration {
	s, c := benchkit.SortedTimes(sent), benchkit.SortedTimes(created)
	out := make([]time.Duration, 0, min(len(s), len(c)))
	for k := 0; k < len(s) && k < len(c); k++ {
		out = append(out, c[k].Sub(s[k]))
	}
	return out
}
