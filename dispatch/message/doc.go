// Package message runs message mode: the dispatcher itself receives each message of a ScaledJob's queue into a
// free slot, binds it to exactly one Job (a deterministic name per message and attempt, so a redelivery, a restart
// or a new leader adopts the Job instead of making a second one), holds the message's lease for the Job's whole
// life, and settles it by the Job's outcome: Complete deletes it, Failed releases it for another attempt until
// maxDeliveries, then dead-letters it with the Job's failure reason.
//
// The pure rules (free slots, which action a message's Jobs call for, which Jobs history may prune) are functions
// in decide.go with table tests; loop.go is the thin I/O layer around them.
//
// It must not: acknowledge a message whose Job did not complete; create a Job for a message while an unfinished
// Job of it exists; keep anything only in memory that a restart needs (a message's Jobs, found by label, are the
// record); receive while the ScaledJob's spec is invalid or it is paused; or read queues for other ScaledJobs.
package message
