// Package explain computes, from a ScaledJob (with its status), its Jobs and their pods, why the dispatcher
// creates the number of Jobs it does, step by step, and prints that explanation.
//
// The decision itself is dispatch.Decide and the pending rule is dispatch.IsPending: this package maps objects
// onto their inputs and describes the results, and must never hold a second copy of those rules. It is pure: no
// client, clock or logger, and it never creates, changes or deletes anything.
package explain
