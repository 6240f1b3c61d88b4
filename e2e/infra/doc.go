// Package infra holds the end-to-end tests of the local stack itself: the control plane, kwok, the emulators and
// the worker simulator.
package infra
