// Package sources defines how kubedispatch reads a trigger's backlog: the Source interface, the registry of trigger
// types, typed metadata parsing, and the error classes (configuration, not found, transient) that sources return.
package sources
