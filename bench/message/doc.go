// Command message is the message-mode latency benchmark (`make bench`): on a fresh local stack, with one dispatcher,
// it sends 1,000 SQS messages at a steady rate to a message-mode ScaledJob and measures enqueue -> Job created per
// message (from the benchmark's own send times and a Job watch, beside the dispatcher's histogram), does the same
// for a count-mode ScaledJob polling every 5 s, measures the first Job for a single message in both modes, and
// writes the results under bench/results/.
package main
