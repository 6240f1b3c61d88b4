// Package cluster starts and stops the local test stack: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok on loopback, with moto (SQS), the Pub/Sub emulator and the Service Bus AMQP fake
// (internal/sbfake) beside them.
package cluster
