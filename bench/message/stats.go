package main

import (
	"math"
	"slices"
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
	return latency{N: len(ds), P50: percentile(ds, 50).Seconds(), P99: percentile(ds, 99).Seconds(), Max: percentile(ds, 100).Seconds()}
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of ds, or 0 when ds is empty.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// kthPairs sorts both slices (copies) and returns, for k below the shorter length, the k-th Job's time minus the
// k-th message's: the latency when Jobs are not bound to messages, as if the queue were served in order.
func kthPairs(sent, created []time.Time) []time.Duration {
	s, c := sortedTimes(sent), sortedTimes(created)
	out := make([]time.Duration, 0, min(len(s), len(c)))
	for k := 0; k < len(s) && k < len(c); k++ {
		out = append(out, c[k].Sub(s[k]))
	}
	return out
}

func sortedTimes(ts []time.Time) []time.Time {
	s := slices.Clone(ts)
	slices.SortFunc(s, func(a, b time.Time) int { return a.Compare(b) })
	return s
}
