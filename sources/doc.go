// Package sources defines how kubedispatch reads a trigger's backlog: the Source interface, the registry of trigger
// types, typed metadata parsing, and the error classes (configuration, not found, transient) that sources return.
//
// It also holds the endpoint policy (CheckEndpoint): a trigger that points at a non-default endpoint is built only
// when the operator's allow-list matches its host and the credentials it would send there belong to the
// ScaledJob's own namespace. The Registry applies it, through each type's EndpointsFunc, before every Source or
// Receiver it builds; every type declares one (NoEndpoints when it has no endpoint parameter), and
// Registry.CheckEndpointRules refuses a Registry in which a type does not.
package sources
