package index

import (
	"context"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
)

// ScaledJob is the name of the index: a Job's or pod's kubedispatch.io/scaledjob label value.
const ScaledJob = "kubedispatch.io/scaledjob"

// ScaledJobOf is the index function.
func ScaledJobOf(o client.Object) []string {
	if v := o.GetLabels()[v1alpha1.LabelScaledJob]; v != "" {
		return []string{v}
	}
	return nil
}

// Register adds the index for Jobs and pods to indexer (the manager's field indexer).
func Register(ctx context.Context, indexer client.FieldIndexer) error {
	for _, obj := range []client.Object{&batchv1.Job{}, &corev1.Pod{}} {
		if err := indexer.IndexField(ctx, obj, ScaledJob, ScaledJobOf); err != nil {
			return fmt.Errorf("indexing %T by ScaledJob: %w", obj, err)
		}
	}
	return nil
}

// Of selects the objects of the ScaledJob name (combine with client.InNamespace).
func Of(name string) client.MatchingFields {
	return client.MatchingFields{ScaledJob: name}
}
