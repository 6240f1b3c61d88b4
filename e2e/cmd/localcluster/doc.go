// Command localcluster brings the local test stack up or down: `localcluster up`, `localcluster down`,
// `localcluster status`. `make cluster-up` / `make cluster-down` call it; `make cluster-up REAL_NODE=1` (or
// `localcluster up --real-node`) adds a real node (kubelet, containerd, runc) next to the kwok node.
//
// It only starts and stops processes of the stack (e2e/cluster); it installs nothing and runs no tests.
package main
