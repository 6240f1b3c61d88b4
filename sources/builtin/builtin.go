package builtin

import (
	"fmt"

	"github.com/kubedispatch/kubedispatch/sources"
	"github.com/kubedispatch/kubedispatch/sources/cron"
	"github.com/kubedispatch/kubedispatch/sources/pubsub"
	"github.com/kubedispatch/kubedispatch/sources/servicebus"
	"github.com/kubedispatch/kubedispatch/sources/sqs"
)

// Registry returns a registry with every built-in trigger type registered. It fails when a type did not register
// its endpoint rule (sources.Registry.CheckEndpointRules), so no type is ever built without the endpoint policy.
func Registry(opts ...sources.RegistryOption) (*sources.Registry, error) {
	r := sources.NewRegistry(opts...)
	for _, register := range []func(*sources.Registry) error{sqs.Register, cron.Register, pubsub.Register, servicebus.Register} {
		if err := register(r); err != nil {
			return nil, fmt.Errorf("registering trigger types: %w", err)
		}
	}
	if err := r.CheckEndpointRules(); err != nil {
		return nil, fmt.Errorf("registering trigger types: %w", err)
	}
	return r, nil
}
