package message

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
)

// JobState is where one Job of a message stands.
type JobState int

// Job states.
const (
	Unfinished JobState = iota
	Complete
	Failed
)

// Attempt is one Job of a message.
type Attempt struct {
	Number int32
	Job    string
	State  JobState
	// Reason is the failure (the Job's Failed condition reason and message) when State is Failed.
	Reason string
}

// ActionKind is what to do with a received message.
type ActionKind int

// Actions.
const (
	// Create the Job for Action.Attempt.
	Create ActionKind = iota
	// Adopt the unfinished Job Action.Job: hold the lease until it finishes.
	Adopt
	// Ack the message: Action.Job completed.
	Ack
	// Release the message for another attempt: Action.Job failed, attempts remain.
	Release
	// DeadLetter the message with Action.Reason: every attempt failed.
	DeadLetter
)

func (k ActionKind) String() string {
	return [...]string{"create", "adopt", "ack", "release", "dead-letter"}[k]
}

// Action is the decision for one message.
type Action struct {
	Kind    ActionKind
	Attempt int32
	Job     string
	Reason  string
}

// Next decides what a (re)delivered message calls for, from its existing Jobs: none -> create attempt 1; the
// latest unfinished -> adopt it; the latest complete -> ack (its work is done, even if the ack was lost before);
// the latest failed -> the next attempt, or dead-letter once maxDeliveries attempts failed.
func Next(attempts []Attempt, maxDeliveries int32) Action {
	if len(attempts) == 0 {
		return Action{Kind: Create, Attempt: 1}
	}
	latest := attempts[0]
	for _, a := range attempts[1:] {
		if a.Number > latest.Number {
			latest = a
		}
	}
	switch latest.State {
	case Unfinished:
		return Action{Kind: Adopt, Attempt: latest.Number, Job: latest.Job}
	case Complete:
		return Action{Kind: Ack, Attempt: latest.Number, Job: latest.Job}
	}
	if latest.Number >= maxDeliveries {
		return Action{Kind: DeadLetter, Attempt: latest.Number, Job: latest.Job, Reason: deadLetterReason(latest, maxDeliveries)}
	}
	return Action{Kind: Create, Attempt: latest.Number + 1}
}

// Settle decides what a held message's finished Job means for the message: complete -> ack; failed -> release
// for the next attempt, or dead-letter at maxDeliveries. An unfinished Job keeps the lease (Adopt).
func Settle(a Attempt, maxDeliveries int32) Action {
	switch a.State {
	case Complete:
		return Action{Kind: Ack, Attempt: a.Number, Job: a.Job}
	case Failed:
		if a.Number >= maxDeliveries {
			return Action{Kind: DeadLetter, Attempt: a.Number, Job: a.Job, Reason: deadLetterReason(a, maxDeliveries)}
		}
		return Action{Kind: Release, Attempt: a.Number, Job: a.Job, Reason: a.Reason}
	}
	return Action{Kind: Adopt, Attempt: a.Number, Job: a.Job}
}

func deadLetterReason(a Attempt, maxDeliveries int32) string {
	reason := a.Reason
	if reason == "" {
		reason = "the Job failed"
	}
	return fmt.Sprintf("all %d deliveries failed (maxDeliveries %d); last Job %s: %s", a.Number, maxDeliveries, a.Job, reason)
}

// FreeSlots is how many more messages may be received: maxReplicaCount minus the unfinished Jobs of the
// ScaledJob (the cache's, plus held messages' Jobs it does not show yet) minus held messages that have no Job
// yet. heldJobs has one entry per held message: its Job's name, or "" while the Job is being created.
func FreeSlots(maxReplicaCount int32, unfinished map[string]bool, heldJobs []string) int {
	used := len(unfinished)
	for _, j := range heldJobs {
		if j == "" || !unfinished[j] {
			used++
		}
	}
	return max(int(maxReplicaCount)-used, 0)
}

// StateOf classifies a Job: Complete or Failed by its True condition, else Unfinished. For a failed Job it also
// returns the failure as "<reason>: <message>".
func StateOf(j *batchv1.Job) (JobState, string) {
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return Complete, ""
		case batchv1.JobFailed:
			if c.Message == "" {
				return Failed, c.Reason
			}
			return Failed, c.Reason + ": " + c.Message
		}
	}
	return Unfinished, ""
}

// AttemptOf reads a message Job's attempt number from its annotation (0 when missing or malformed).
func AttemptOf(j *batchv1.Job) int32 {
	n, err := strconv.ParseInt(j.Annotations[v1alpha1.AnnotationDelivery], 10, 32)
	if err != nil {
		return 0
	}
	return int32(n)
}

// Attempts turns a message's Jobs into Attempts.
func Attempts(jobs []batchv1.Job) []Attempt {
	out := make([]Attempt, 0, len(jobs))
	for i := range jobs {
		st, reason := StateOf(&jobs[i])
		out = append(out, Attempt{Number: AttemptOf(&jobs[i]), Job: jobs[i].Name, State: st, Reason: reason})
	}
	return out
}

// UnsettledRetention is how long a finished Job whose message was never settled is kept (its message left the
// queue without coming back: redriven, expired, or the queue changed). A held message comes back within its
// visibility timeout, and SQS caps that at 12 hours.
const UnsettledRetention = 24 * time.Hour

// Prunable returns the finished message Jobs that history limits may delete: those whose message is settled
// (acked or dead-lettered), released ones that a later attempt of the same message follows, and any that finished
// more than UnsettledRetention before now. The latest Job of a message whose fate is open is the record of its
// attempts and is kept.
func Prunable(jobs []batchv1.Job, now time.Time) []batchv1.Job {
	latest := map[string]int32{}
	for i := range jobs {
		key := jobs[i].Labels[v1alpha1.LabelMessage]
		if n := AttemptOf(&jobs[i]); n > latest[key] {
			latest[key] = n
		}
	}
	var out []batchv1.Job
	for i := range jobs {
		j := &jobs[i]
		if st, _ := StateOf(j); st == Unfinished {
			continue
		}
		switch j.Annotations[v1alpha1.AnnotationMessageOutcome] {
		case v1alpha1.OutcomeAcked, v1alpha1.OutcomeDeadLettered:
			out = append(out, *j)
		case v1alpha1.OutcomeReleased:
			if AttemptOf(j) < latest[j.Labels[v1alpha1.LabelMessage]] {
				out = append(out, *j)
				continue
			}
			fallthrough
		default:
			if at := finishedAt(j); !at.IsZero() && now.Sub(at) > UnsettledRetention {
				out = append(out, *j)
			}
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// RetryDelay is how long a message whose attempt-th Job failed stays invisible before its next delivery: 5 s
// doubling per attempt, at most 5 minutes, so a broken template does not run a queue into the dead-letter queue
// in seconds.
func RetryDelay(attempt int32) time.Duration {
	d := 5 * time.Second
	for i := int32(1); i < attempt && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

// finishedAt is when a Job's Complete or Failed condition became true (zero when unfinished).
func finishedAt(j *batchv1.Job) time.Time {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}
