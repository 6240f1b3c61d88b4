// Package realnode holds the end-to-end tests that need containers to run for real: the stack's real node
// (kubelet + containerd + runc, cluster.Options.RealNode) runs a plain pod whose log is read through the API server,
// and message-mode Jobs whose example worker (examples/worker) reads its own payload file and exits 0, or 1 when
// told to fail, which gets its message redelivered.
//
// These tests must keep to what kwok cannot show (processes, files, exit codes, logs); dispatch logic is tested
// with kwok in e2e/message and e2e/dispatcher. Pods here select and tolerate the real node (framework.OnRealNode);
// nothing else may land on it.
package realnode
