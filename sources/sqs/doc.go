// Package sqs implements the KEDA-compatible aws-sqs-queue trigger: the backlog is an Amazon SQS queue's approximate
// message count.
package sqs
