// Package triggers holds the end-to-end tests of the gcp-pubsub and azure-servicebus triggers, of
// ClusterTriggerAuthentication and of mixed triggers, run through the real dispatcher binary on the local control plane.
package triggers
