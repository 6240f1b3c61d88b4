package dispatch

import (
	"fmt"
	"sort"
	"time"

	"github.com/kubedispatch/kubedispatch/dispatch/internal/apilimit"
)

// JobOutcome is one finished Job, for the failing-Jobs back-off.
type JobOutcome struct {
	// At is when the Job finished (its Complete or Failed condition's transition time).
	At time.Time
	// Failed is true for a Failed Job.
	Failed bool
	// Reason is the Failed condition's reason and message.
	Reason string
}

// BackoffInputs are what FailingJobsBackoff needs.
type BackoffInputs struct {
	// Outcomes are the finished Jobs still in the cache, in any order.
	Outcomes []JobOutcome
	// Unfinished counts the ScaledJob's unfinished Jobs: while one runs (a probe, or a Job from before the
	// failures) no probe is started; its outcome decides.
	Unfinished int64
	// Now is the tick's time.
	Now time.Time
}

// Backoff is the outcome of FailingJobsBackoff.
type Backoff struct {
	// Active is true when creation is limited because Jobs keep failing.
	Active bool
	// Allowed is how many Jobs may be created now (0 or 1, a probe) when Active.
	Allowed int64
	// RetryAt is when the next probe may start, when Active and Allowed is 0.
	RetryAt time.Time
	// Consecutive is the number of failed Jobs since the newest success.
	Consecutive int
	// LastReason is the newest failure's reason.
	LastReason string
}

// The failing-Jobs back-off: after BackoffThreshold failed Jobs in a row (no success in between), creation waits
// BackoffBase, doubling with each further failure up to BackoffCap, and then starts one probe Job. A success ends it.
const (
	BackoffThreshold = 3
	BackoffBase      = 10 * time.Second
	BackoffCap       = 5 * time.Minute
)

// FailingJobsBackoff decides whether a ScaledJob whose Jobs keep failing may create Jobs now. Without it, a
// template whose Jobs fail at once and a backlog that stays make a creation storm: each failure frees a slot that
// is refilled at once.
func FailingJobsBackoff(in BackoffInputs) Backoff {
	outs := append([]JobOutcome(nil), in.Outcomes...)
	sort.SliceStable(outs, func(i, j int) bool { return outs[i].At.Before(outs[j].At) })
	var b Backoff
	var lastFailure time.Time
	for i := len(outs) - 1; i >= 0 && outs[i].Failed; i-- {
		b.Consecutive++
		if lastFailure.IsZero() {
			lastFailure, b.LastReason = outs[i].At, outs[i].Reason
		}
	}
	if b.Consecutive < BackoffThreshold {
		return Backoff{Consecutive: b.Consecutive, LastReason: b.LastReason}
	}
	b.Active = true
	delay := BackoffBase
	for i := BackoffThreshold; i < b.Consecutive && delay < BackoffCap; i++ {
		delay *= 2
	}
	delay = min(delay, BackoffCap)
	if at := lastFailure.Add(delay); in.Now.Before(at) {
		b.RetryAt = at
		return b
	}
	if in.Unfinished == 0 {
		b.Allowed = 1
	}
	return b
}

// Explain renders the back-off for status and events.
func (b Backoff) Explain() string {
	s := fmt.Sprintf("%d Jobs failed in a row (last: %s)", b.Consecutive, apilimit.Truncate(b.LastReason, 300))
	switch {
	case b.Allowed > 0:
		return s + "; starting one probe Job, a success ends the back-off"
	case !b.RetryAt.IsZero():
		return s + "; next probe Job at " + b.RetryAt.UTC().Format(time.RFC3339)
	default:
		return s + "; waiting for the probe Job to finish"
	}
}
