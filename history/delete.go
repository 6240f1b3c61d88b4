package history

import (
	"context"
	"errors"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Deleter deletes Jobs with Background propagation, ignoring NotFound, joining per-Job errors
// (errors.Join), continuing past failures.
type Deleter struct {
	// Client is the API client used for the deletions.
	Client client.Client
}

// Delete deletes each Job with Background propagation, so the Job goes at once and the garbage collector
// removes its pods afterwards. A Job that is already gone (NotFound) is skipped and not counted; any other
// failure is recorded and the remaining Jobs are still deleted. It stops early only when ctx is done.
// deleted counts the Jobs this call removed; err joins the per-Job errors.
func (d Deleter) Delete(ctx context.Context, jobs []batchv1.Job) (deleted int, err error) {
	var errs []error
	for i := range jobs {
		if ctxErr := ctx.Err(); ctxErr != nil {
			errs = append(errs, fmt.Errorf("deleting %d remaining jobs: %w", len(jobs)-i, ctxErr))
			break
		}
		job := jobs[i].DeepCopy() // the client may write into the object; keep the caller's slice intact.
		delErr := d.Client.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground))
		switch {
		case delErr == nil:
			deleted++
		case apierrors.IsNotFound(delErr):
		default:
			errs = append(errs, fmt.Errorf("deleting job %s/%s: %w", job.Namespace, job.Name, delErr))
		}
	}
	return deleted, errors.Join(errs...)
}
