package index

import (
	"context"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
)

// Index names.
const (
	// ScaledJob indexes Jobs and pods by their kubedispatch.io/scaledjob label value.
	ScaledJob = "kubedispatch.io/scaledjob"
	// TriggerAuthentication indexes ScaledJobs by the names of the TriggerAuthentications their triggers name.
	TriggerAuthentication = "kubedispatch.io/triggerauthentication"
	// ClusterTriggerAuthentication indexes ScaledJobs by the names of the ClusterTriggerAuthentications their
	// triggers name.
	ClusterTriggerAuthentication = "kubedispatch.io/clustertriggerauthentication"
)

// ScaledJobOf is the ScaledJob index function.
func ScaledJobOf(o client.Object) []string {
	if v := o.GetLabels()[v1alpha1.LabelScaledJob]; v != "" {
		return []string{v}
	}
	return nil
}

// TriggerAuthenticationsOf is the TriggerAuthentication index function (v1alpha1.ScaledJobSpec.AuthenticationNames).
func TriggerAuthenticationsOf(o client.Object) []string {
	return authenticationNames(o, v1alpha1.KindTriggerAuthentication)
}

// ClusterTriggerAuthenticationsOf is the ClusterTriggerAuthentication index function
// (v1alpha1.ScaledJobSpec.AuthenticationNames).
func ClusterTriggerAuthenticationsOf(o client.Object) []string {
	return authenticationNames(o, v1alpha1.KindClusterTriggerAuthentication)
}

func authenticationNames(o client.Object, kind string) []string {
	sj, ok := o.(*v1alpha1.ScaledJob)
	if !ok {
		return nil
	}
	return sj.Spec.AuthenticationNames(kind)
}

// Register adds the indexes to indexer (the manager's field indexer).
func Register(ctx context.Context, indexer client.FieldIndexer) error {
	for _, obj := range []client.Object{&batchv1.Job{}, &corev1.Pod{}} {
		if err := indexer.IndexField(ctx, obj, ScaledJob, ScaledJobOf); err != nil {
			return fmt.Errorf("indexing %T by ScaledJob: %w", obj, err)
		}
	}
	if err := indexer.IndexField(ctx, &v1alpha1.ScaledJob{}, TriggerAuthentication, TriggerAuthenticationsOf); err != nil {
		return fmt.Errorf("indexing ScaledJobs by TriggerAuthentication: %w", err)
	}
	if err := indexer.IndexField(ctx, &v1alpha1.ScaledJob{}, ClusterTriggerAuthentication, ClusterTriggerAuthenticationsOf); err != nil {
		return fmt.Errorf("indexing ScaledJobs by ClusterTriggerAuthentication: %w", err)
	}
	return nil
}

// Of selects the objects of the ScaledJob name (combine with client.InNamespace).
func Of(name string) client.MatchingFields {
	return client.MatchingFields{ScaledJob: name}
}

// UsingTriggerAuthentication selects the ScaledJobs whose triggers name the TriggerAuthentication name (combine with
// client.InNamespace: a TriggerAuthentication serves only its own namespace).
func UsingTriggerAuthentication(name string) client.MatchingFields {
	return client.MatchingFields{TriggerAuthentication: name}
}

// UsingClusterTriggerAuthentication selects the ScaledJobs, in every namespace, whose triggers name the
// ClusterTriggerAuthentication name.
func UsingClusterTriggerAuthentication(name string) client.MatchingFields {
	return client.MatchingFields{ClusterTriggerAuthentication: name}
}
