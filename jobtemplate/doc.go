// Package jobtemplate builds the batch/v1 Jobs a ScaledJob dispatches, as pure functions that never mutate their
// input. Build makes a count-mode Job; BuildMessage makes a message-mode Job bound to one queue message, with the
// Secret that holds the message body.
package jobtemplate
