// Package cron implements the KEDA-compatible cron trigger: desiredReplicas Jobs are wanted while a time window,
// given as start and end cron expressions in an IANA time zone, is open. With the key runsPerWindow (this
// project's own) the trigger instead reports the window occurrence it is about and how many Jobs it wants in
// total; the dispatcher subtracts those it created for it. The schedule parsing and evaluation here are also used
// by capacity windows (dispatch/capacity), so there is one copy of the cron rules. It does no I/O.
package cron
