package dispatch

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/go-logr/logr"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/history"
	"github.com/kubedispatch/kubedispatch/jobtemplate"
)

// createJobs creates n Jobs in parallel (bounded by CreateWorkers; the client's rate limiter paces the requests).
// Every failure is reported on its own and does not stop the others. It returns how many were created and the
// joined errors.
func (r *Reconciler) createJobs(ctx context.Context, sj *v1alpha1.ScaledJob, n int64) (int64, error) {
	if n <= 0 {
		return 0, nil
	}
	log := logr.FromContextOrDiscard(ctx)
	errs := make([]error, n)
	names := make([]string, n)
	sem := make(chan struct{}, r.CreateWorkers)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			names[i], errs[i] = r.createOne(ctx, sj)
		}()
	}
	wg.Wait()

	var created []string
	var failed []error
	for i := range n {
		if errs[i] != nil {
			failed = append(failed, errs[i])
			continue
		}
		created = append(created, names[i])
	}
	r.expectations.expect(keyOf(sj), created, r.Clock.Now())
	r.Metrics.JobsCreated.WithLabelValues(sj.Namespace, sj.Name).Add(float64(len(created)))
	r.Metrics.JobCreateErrors.WithLabelValues(sj.Namespace, sj.Name).Add(float64(len(failed)))
	if len(created) > 0 {
		r.Recorder.Eventf(sj, nil, corev1.EventTypeNormal, ReasonJobsCreated, "CreateJobs", "Created %d Job(s)", len(created))
		log.Info("Created Jobs", "count", len(created), "requested", n)
	}
	if len(failed) > 0 {
		// One event per tick, not one per Job: a quota refusal for 50 Jobs is one line.
		r.Recorder.Eventf(sj, nil, corev1.EventTypeWarning, ReasonJobCreateFailed, "CreateJobs",
			"%d of %d Job creations were refused; first error: %s", len(failed), n, truncate(failed[0].Error(), 800))
		return int64(len(created)), fmt.Errorf("creating %d of %d Jobs failed: %w", len(failed), n, errors.Join(failed...))
	}
	return int64(len(created)), nil
}

// createOne builds and creates one Job; a name collision retries with a new suffix.
func (r *Reconciler) createOne(ctx context.Context, sj *v1alpha1.ScaledJob) (string, error) {
	var lastErr error
	for range 3 {
		job, err := jobtemplate.Build(sj, jobtemplate.Name(sj.Name, r.NameSuffix))
		if err != nil {
			return "", err
		}
		err = r.Client.Create(ctx, job, client.FieldOwner(v1alpha1.FieldManager))
		if err == nil {
			return job.Name, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return "", fmt.Errorf("creating job %s: %w", job.Name, err)
		}
		lastErr = err
	}
	return "", fmt.Errorf("creating job: %w", lastErr)
}

// rollout deletes Jobs of older generations when rollout.strategy is immediate. With gradual (the default) it does
// nothing: running Jobs finish on the template they started with. A Job without the generation annotation is left
// alone: it was not made by this dispatcher's rules, and a restart must never delete running work.
//
// It returns the Jobs that remain (those not deleted), for history pruning to count.
func (r *Reconciler) rollout(ctx context.Context, sj *v1alpha1.ScaledJob, jobs []batchv1.Job) ([]batchv1.Job, error) {
	if sj.Spec.RolloutStrategy() != v1alpha1.RolloutImmediate {
		return jobs, nil
	}
	current := strconv.FormatInt(sj.Generation, 10)
	var old, remaining []batchv1.Job
	for _, j := range jobs {
		if g, ok := j.Annotations[v1alpha1.AnnotationGeneration]; ok && g != current && j.DeletionTimestamp.IsZero() {
			old = append(old, j)
			continue
		}
		remaining = append(remaining, j)
	}
	if len(old) == 0 {
		return jobs, nil
	}
	policy := sj.Spec.PropagationPolicy()
	var errs []error
	deleted := 0
	for i := range old {
		err := r.Client.Delete(ctx, &old[i], client.PropagationPolicy(policy))
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting job %s of an older generation: %w", old[i].Name, err))
			remaining = append(remaining, old[i])
			continue
		}
		deleted++
	}
	r.Metrics.JobsDeleted.WithLabelValues(sj.Namespace, sj.Name, "rollout").Add(float64(deleted))
	if deleted > 0 {
		r.Recorder.Eventf(sj, nil, corev1.EventTypeNormal, ReasonRolloutDeleted, "Rollout",
			"Deleted %d Job(s) of older generations (rollout.strategy immediate, generation %d)", deleted, sj.Generation)
		logr.FromContextOrDiscard(ctx).Info("Deleted Jobs of older generations", "count", deleted, "generation", sj.Generation)
	}
	return remaining, errors.Join(errs...)
}

// pruneHistory deletes finished Jobs beyond the history limits.
func (r *Reconciler) pruneHistory(ctx context.Context, sj *v1alpha1.ScaledJob, jobs []batchv1.Job) error {
	victims := history.Select(jobs, history.Limits{Successful: sj.Spec.SuccessfulHistoryLimit(), Failed: sj.Spec.FailedHistoryLimit()})
	if len(victims) == 0 {
		return nil
	}
	deleted, err := history.Deleter{Client: r.Client}.Delete(ctx, victims)
	r.Metrics.JobsDeleted.WithLabelValues(sj.Namespace, sj.Name, "history").Add(float64(deleted))
	if deleted > 0 {
		logr.FromContextOrDiscard(ctx).V(1).Info("Pruned finished Jobs beyond the history limits", "count", deleted)
	}
	if err != nil {
		r.Recorder.Eventf(sj, nil, corev1.EventTypeWarning, ReasonHistoryError, "PruneHistory", "%s", truncate(err.Error(), 1000))
		return fmt.Errorf("pruning history of %s/%s: %w", sj.Namespace, sj.Name, err)
	}
	return nil
}
