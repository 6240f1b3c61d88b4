// Package capacity evaluates a ScaledJob's capacity windows and once-per-window cron batches: which windows are
// open at a given time and the minReplicaCount and maxReplicaCount that follow, when the next opening or closing
// is, which Jobs a terminating close stops, and how many Jobs a runsPerWindow occurrence still wants.
//
// Everything here is a pure function of its named inputs (the time is an argument): no client, clock or logger.
// It must not read or write the API server or any queue; the dispatcher and the kubectl plugin both call it, so
// there is one copy of each rule.
package capacity
