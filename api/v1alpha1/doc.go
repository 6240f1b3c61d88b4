// Package v1alpha1 contains the kubedispatch.io/v1alpha1 API types: ScaledJob, TriggerAuthentication and
// ClusterTriggerAuthentication, with their defaults and static validation.
//
// +kubebuilder:object:generate=true
// +groupName=kubedispatch.io
package v1alpha1
