package main

import (
	"github.com/kubedispatch/kubedispatch/bench/internal/benchkit"
	"time"
)

// refillDelays pairs the k-th Job to finish with the (maxJobs+k)-th Job to be created and returns, for each pair, how
// long after that finish the new Job appeared. While the cap binds, each new Job can only start when one finishes, so
// this is the dispatcher's reaction time to a finished Job. Both slices are sorted (copies; the inputs are untouched).
func refillDelays(created, finished []time.Time, maxJobs int) []time.Duration {
	c, f := benchkit.SortedTimes(created), benchkit.SortedTimes(finished)
	var out []time.Duration
	for k := 0; maxJobs+k < len(c) && k < len(f); k++ {
		out = append(out, c[maxJobs+k].Sub(f[k]))
	}
	return out
}

// lifetimes returns, for every Job that both appeared and finished, the time between the two.
func lifetimes[K comparable](created, finished map[K]time.Time) []time.Duration {
	var out []time.Duration
	for k, c := range created {
		if f, ok := finished[k]; ok {
			out = append(out, f.Sub(c))
		}
	}
	return out
}
