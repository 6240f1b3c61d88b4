// Package benchkit holds what the burst and drain benchmarks share: progress output, the local stack and its client,
// the dispatcher subprocess, waits, the Job watch, SQS batches and the results files.
package benchkit
