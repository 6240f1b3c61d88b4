package history

import (
	"cmp"
	"slices"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// Limits are the numbers of finished Jobs to keep per class (successfulJobsHistoryLimit and
// failedJobsHistoryLimit). The defaults of 100/100 are applied by the caller; negative values count as 0.
type Limits struct {
	Successful, Failed int32
}

// Select returns the finished Jobs to delete: Complete ones beyond Limits.Successful, oldest first by the
// Complete condition's lastTransitionTime (fallback status.completionTime, then creationTimestamp), and
// Failed ones beyond Limits.Failed by the Failed condition's lastTransitionTime (fallback
// creationTimestamp); ties broken by name. Unfinished Jobs are never selected. Input is not mutated.
// Result order: deterministic (successful victims then failed victims, oldest first).
//
// A Job's class is decided by its first condition of type Complete or Failed with status True, as in KEDA.
// Deliberate difference from KEDA: KEDA sorts both classes by status.completionTime, which Kubernetes
// never sets on failed Jobs, so KEDA prunes failed Jobs in list order; here they go oldest first.
func Select(jobs []batchv1.Job, limits Limits) []batchv1.Job {
	var succeeded, failed []finished
	for i := range jobs {
		class, at, ok := classify(&jobs[i])
		if !ok {
			continue
		}
		f := finished{job: &jobs[i], at: at}
		if class == batchv1.JobComplete {
			succeeded = append(succeeded, f)
		} else {
			failed = append(failed, f)
		}
	}
	victims := slices.Concat(oldestBeyond(succeeded, limits.Successful), oldestBeyond(failed, limits.Failed))
	if len(victims) == 0 {
		return nil
	}
	out := make([]batchv1.Job, 0, len(victims))
	for _, v := range victims {
		out = append(out, *v.job.DeepCopy())
	}
	return out
}

// finished is a finished Job with the time it finished.
type finished struct {
	job *batchv1.Job
	at  time.Time
}

// classify returns the Job's class (Complete or Failed) and when it reached it; ok is false for
// unfinished Jobs.
func classify(job *batchv1.Job) (class batchv1.JobConditionType, at time.Time, ok bool) {
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue || (c.Type != batchv1.JobComplete && c.Type != batchv1.JobFailed) {
			continue
		}
		at = c.LastTransitionTime.Time
		if at.IsZero() && c.Type == batchv1.JobComplete && job.Status.CompletionTime != nil {
			at = job.Status.CompletionTime.Time
		}
		if at.IsZero() {
			at = job.CreationTimestamp.Time
		}
		return c.Type, at, true
	}
	return "", time.Time{}, false
}

// oldestBeyond sorts jobs oldest first (ties by name, then namespace) and returns all but the newest keep.
func oldestBeyond(jobs []finished, keep int32) []finished {
	excess := len(jobs) - int(max(keep, 0))
	if excess <= 0 {
		return nil
	}
	slices.SortFunc(jobs, func(a, b finished) int {
		return cmp.Or(
			a.at.Compare(b.at),
			cmp.Compare(a.job.Name, b.job.Name),
			cmp.Compare(a.job.Namespace, b.job.Namespace),
		)
	})
	return jobs[:excess]
}
