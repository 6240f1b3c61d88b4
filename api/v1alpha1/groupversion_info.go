package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "kubedispatch.io", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a runtime.Scheme. The types are registered here,
	// in the variable's initializer, rather than in init functions.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

const (
	// LabelScaledJob is set on every Job created for a ScaledJob, and on its pods, to the ScaledJob's name.
	LabelScaledJob = "kubedispatch.io/scaledjob"

	// AnnotationPaused on a ScaledJob stops dispatching: "true", or any value that does not parse as a boolean,
	// pauses it; "false" does not.
	AnnotationPaused = "kubedispatch.io/paused"

	// AnnotationGeneration on a Job records the metadata.generation of the ScaledJob it was created from.
	AnnotationGeneration = "kubedispatch.io/generation"

	// AnnotationCreateToken is a random token set on each Job at creation. A create that the API server applied
	// but answered with an error (and that client-go retried into AlreadyExists) is recognised by it and adopted,
	// never made twice.
	AnnotationCreateToken = "kubedispatch.io/create-token"

	// FieldManager is the field manager name the dispatcher uses for its writes.
	FieldManager = "kubedispatch"
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&ScaledJob{}, &ScaledJobList{},
		&TriggerAuthentication{}, &TriggerAuthenticationList{},
		&ClusterTriggerAuthentication{}, &ClusterTriggerAuthenticationList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
