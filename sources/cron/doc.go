// Package cron implements the KEDA-compatible cron trigger: desiredReplicas Jobs are wanted while a time window,
// given as start and end cron expressions in an IANA time zone, is open.
package cron
