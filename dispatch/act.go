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
	"github.com/kubedispatch/kubedispatch/dispatch/internal/apilimit"
	"github.com/kubedispatch/kubedispatch/history"
	"github.com/kubedispatch/kubedispatch/jobtemplate"
)

// createJobs creates up to n Jobs in parallel (bounded by CreateWorkers; the client's rate limiter paces the
// requests). The caller caps n per tick. The first refusal (quota, admission, a bad template) stops launching further
// creates for this tick: the Jobs already in flight finish, the rest wait for the retry with back-off. A cancelled
// context (the ScaledJob was deleted, the process is stopping) stops it too. It returns how many were created and
// the joined errors; memory does not grow with n beyond the in-flight creates.
func (r *Reconciler) createJobs(ctx context.Context, sj *v1alpha1.ScaledJob, n int64, annotations map[string]string) (int64, error) {
	if n <= 0 {
		return 0, nil
	}
	log := logr.FromContextOrDiscard(ctx)
	var (
		mu       sync.Mutex
		created  []string
		failed   int
		firstErr error
		stopOnce sync.Once
	)
	// refused stops launching; creates already in flight finish with the caller's context, so none is cut off
	// half-way (a cancelled create may still have been applied).
	refused := make(chan struct{})
	sem := make(chan struct{}, r.CreateWorkers)
	var wg sync.WaitGroup
launch:
	for range n {
		select {
		case sem <- struct{}{}:
		case <-refused:
			break launch
		case <-ctx.Done():
			break launch
		}
		select {
		case <-refused:
			<-sem
			break launch
		default:
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			name, err := r.createOne(ctx, sj, annotations)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				if firstErr == nil {
					firstErr = err
				}
				stopOnce.Do(func() { close(refused) })
				return
			}
			created = append(created, name)
		}()
	}
	wg.Wait()

	r.expectations.expect(keyOf(sj), created, r.Clock.Now())
	r.Metrics.JobsCreated.WithLabelValues(sj.Namespace, sj.Name).Add(float64(len(created)))
	r.Metrics.JobCreateErrors.WithLabelValues(sj.Namespace, sj.Name).Add(float64(failed))
	if len(created) > 0 {
		r.recorder.Eventf(sj, nil, corev1.EventTypeNormal, ReasonJobsCreated, "CreateJobs", "Created %d Job(s)", len(created))
		log.Info("Created Jobs", "count", len(created), "requested", n)
	}
	if firstErr != nil {
		// One event per tick, not one per Job: a quota refusal is one line.
		r.recorder.Eventf(sj, nil, corev1.EventTypeWarning, ReasonJobCreateFailed, "CreateJobs",
			"%d of %d Job creations were refused, the rest of this tick was not attempted; first error: %s",
			failed, n, apilimit.Truncate(firstErr.Error(), 800))
		return int64(len(created)), fmt.Errorf("creating %d of %d Jobs failed (the rest of this tick was not attempted): %w", failed, n, firstErr)
	}
	return int64(len(created)), nil
}

// createOne builds and creates one Job carrying a random create token. A name collision with somebody else's Job
// retries with a new name; a collision with our own token (the API server applied a create it answered with an
// error, and client-go retried) is our Job, adopted. An ambiguous failure (a server error or a timeout) is checked
// by reading the name back, so a Job the API server did make is never made again.
func (r *Reconciler) createOne(ctx context.Context, sj *v1alpha1.ScaledJob, annotations map[string]string) (string, error) {
	var lastErr error
	for range 3 {
		job, err := jobtemplate.Build(sj, jobtemplate.JobName(sj, r.NameSuffix), r.ShardLabelKeys...)
		if err != nil {
			return "", err
		}
		token := jobtemplate.RandomSuffix() + jobtemplate.RandomSuffix()
		for k, v := range annotations {
			job.Annotations[k] = v
		}
		job.Annotations[v1alpha1.AnnotationCreateToken] = token
		err = r.Client.Create(ctx, job, client.FieldOwner(v1alpha1.FieldManager))
		if err == nil {
			return job.Name, nil
		}
		if apierrors.IsAlreadyExists(err) || ambiguous(err) {
			if ours, gerr := r.madeWithToken(ctx, sj.Namespace, job.Name, token); gerr == nil && ours {
				return job.Name, nil
			}
		}
		if !apierrors.IsAlreadyExists(err) {
			return "", fmt.Errorf("creating job %s: %w", job.Name, err)
		}
		lastErr = err
	}
	return "", fmt.Errorf("creating job: %w", lastErr)
}

// ambiguous reports whether a create error leaves open whether the API server applied it.
func ambiguous(err error) bool {
	return apierrors.IsInternalError(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsTooManyRequests(err) || apierrors.IsUnexpectedServerError(err) ||
		errors.Is(err, context.DeadlineExceeded) || !isStatusError(err)
}

func isStatusError(err error) bool {
	var s apierrors.APIStatus
	return errors.As(err, &s)
}

// madeWithToken reads a Job from the API server (not the cache, which may lag) and reports whether it carries token.
func (r *Reconciler) madeWithToken(ctx context.Context, namespace, name, token string) (bool, error) {
	var j batchv1.Job
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &j); err != nil {
		return false, err
	}
	return j.Annotations[v1alpha1.AnnotationCreateToken] == token, nil
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
		r.recorder.Eventf(sj, nil, corev1.EventTypeNormal, ReasonRolloutDeleted, "Rollout",
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
		r.recorder.Eventf(sj, nil, corev1.EventTypeWarning, ReasonHistoryError, "PruneHistory", "%s", err.Error())
		return fmt.Errorf("pruning history of %s/%s: %w", sj.Namespace, sj.Name, err)
	}
	return nil
}
