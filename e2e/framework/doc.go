// Package framework starts the local stack once per test binary and hands each end-to-end test a client, a fresh
// namespace and queue clients pointed at the emulators.
package framework
