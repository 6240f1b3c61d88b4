// Package cluster starts and stops the local test stack: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok on loopback, with moto (SQS) and the Pub/Sub emulator beside them.
package cluster
