// Package builtin assembles the registry of every trigger type this project ships (aws-sqs-queue, cron,
// gcp-pubsub, azure-servicebus), so the dispatcher and the kubectl plugin build sources from one list. It only
// wires packages together: no trigger logic lives here.
package builtin

import (
	"fmt"

	"github.com/kubedispatch/kubedispatch/sources"
	"github.com/kubedispatch/kubedispatch/sources/cron"
	"github.com/kubedispatch/kubedispatch/sources/pubsub"
	"github.com/kubedispatch/kubedispatch/sources/servicebus"
	"github.com/kubedispatch/kubedispatch/sources/sqs"
)

// Registry returns a registry with every built-in trigger type registered.
func Registry(opts ...sources.RegistryOption) (*sources.Registry, error) {
	r := sources.NewRegistry(opts...)
	for _, register := range []func(*sources.Registry) error{sqs.Register, cron.Register, pubsub.Register, servicebus.Register} {
		if err := register(r); err != nil {
			return nil, fmt.Errorf("registering trigger types: %w", err)
		}
	}
	return r, nil
}
