// Package scale holds the end-to-end tests of the dispatcher at scale and under faults: many idle ScaledJobs, a
// black-holed trigger endpoint, failing triggers, a huge maxReplicaCount, abusers under a ResourceQuota, a faulty
// API-server proxy and a rotated Secret, run through the real dispatcher binary on the local control plane.
//
// The tests do not call t.Parallel: some read counters of the whole kube-apiserver (apiserver_request_total), which
// must count only the test's own dispatcher, and all of them load a small shared machine.
package scale
