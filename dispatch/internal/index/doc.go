// Package index defines the cache indexes of the dispatcher. Jobs and pods are indexed by the value of their
// kubedispatch.io/scaledjob label: without it a list by label scans every Job (or pod) of the namespace, on every
// tick of every ScaledJob there; with it a tick touches only its own objects. ScaledJobs are indexed by the
// TriggerAuthentications and ClusterTriggerAuthentications their triggers name, so an edit of one of those finds
// the ScaledJobs that use it without listing all of them. It holds no state and does no I/O beyond registering the
// indexes.
package index
