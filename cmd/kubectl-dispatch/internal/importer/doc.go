// Package importer converts KEDA keda.sh/v1alpha1 ScaledJob, TriggerAuthentication and ClusterTriggerAuthentication
// manifests into kubedispatch.io/v1alpha1 ones, and says, as YAML comments, which deliberate differences from KEDA
// (docs/keda-migration.md) apply to each converted object.
//
// It is pure: it reads bytes and returns bytes, and never talks to a cluster. It must not return half a
// conversion: when any object cannot be converted (an unsupported trigger type, an unknown field, a spec that
// kubedispatch refuses) Convert returns an error and no output at all.
package importer
