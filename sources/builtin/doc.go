// Package builtin assembles the registry of every trigger type this project ships (aws-sqs-queue, cron,
// gcp-pubsub, azure-servicebus), so the dispatcher and the kubectl plugin build sources from one list. It only
// wires packages together: no trigger logic lives here.
package builtin
