// Command demo is `make demo`: a local cluster (kube-apiserver, controller-manager, scheduler, etcd, kwok) with moto
// for SQS, the dispatcher, the SQS ETL example from deploy/examples, 50 messages, and a worker simulator that plays
// the Jobs' part (count mode); then the message-mode PDF example from deploy/examples, where the dispatcher itself
// receives each message, makes one Job per message, acks it after the Job completes and dead-letters the ones whose
// Jobs keep failing; then real worker containers (examples/worker, built as an image without Docker) on the stack's
// real node (kubelet + containerd), each reading its own message and printing its SHA-256, with their logs. It prints `kubectl get ksj,jobs` snapshots until each part is done, then stops what it started.
//
// DEMO_MODE=count or DEMO_MODE=message runs one part only (`make demo-message` is the latter).
// DEMO_REAL_NODE=0 starts the stack without the real node (the real-worker part is then skipped).
// Set DEMO_KEEP=1 to leave the stack running afterwards (then `. .local/cluster.env`, and `make cluster-down`).
package main
