// Package jobtemplate builds the batch/v1 Jobs a ScaledJob dispatches, as pure functions that never mutate their
// input.
package jobtemplate
