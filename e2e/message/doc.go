// Package message holds the end-to-end tests of message mode on the local stack with moto: one Job per message,
// leases held for the Job's life, acks only after Complete, retries and dead-letters, restarts and failover.
package message
