// Package apilimit keeps the text the dispatcher writes into events and status within what the API server
// accepts: one truncation rule (cut at a UTF-8 boundary, say how much was cut), used for every event note and
// condition message, and an event recorder that applies it.
//
// It must not decide what is written, only how long it may be; it makes no API call of its own.
package apilimit
