// Command message is the message-mode latency benchmark (`make bench`): on a fresh local stack, with one dispatcher,
// it sends 1,000 SQS messages at a steady rate to a message-mode ScaledJob and measures enqueue -> Job created per
// message (from the benchmark's own send times and a Job watch, beside the dispatcher's histogram), does the same
// for a count-mode ScaledJob polling every 5 s, measures the first Job for a single message in both modes, then runs
// the same message-mode stream (300 messages by default) on a Pub/Sub subscription (the emulator) and on a Service
// Bus queue (the AMQP fake), and writes the results under bench/results/. -queues picks the queue services; every
// queue-specific step (create, trigger, send, count what is left) is behind the benchQueue interface (queues.go), so
// the measurement loop (runStream) is one for all.
package main
