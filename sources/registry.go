package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
)

// Registry maps trigger types to the factories that build their sources. Build one per process with NewRegistry and
// fill it with each trigger package's Register function. It is safe for concurrent use.
//
// The Registry is also where the endpoint policy is enforced: before it builds a Source or a Receiver, it asks the
// type's EndpointsFunc which non-default endpoints the configuration points at and refuses the configuration unless
// CheckEndpoint allows each of them under the Registry's EndpointPolicy. Every type must declare its endpoint rule
// (an EndpointsFunc, or NoEndpoints for a type without an endpoint parameter): CheckEndpointRules refuses a
// Registry in which one does not, and the dispatcher's Registry (package builtin) is checked before use.
type Registry struct {
	mu        sync.RWMutex
	factories map[string]Factory
	receivers map[string]ReceiverFactory
	endpoints map[string]EndpointsFunc
	policy    EndpointPolicy
}

// EndpointsFunc returns the non-default endpoints a trigger configuration points at, with the credentials the
// source would send to each; nil when it uses only its defaults (including endpoints the operator configured in the
// dispatcher's environment). It returns the *ConfigError the source's factory would for a bad configuration.
type EndpointsFunc func(cfg Config) ([]EndpointUse, error)

// NoEndpoints is the endpoint rule of a trigger type that has no endpoint parameter (cron: it talks to no
// service): its configurations never point at a non-default endpoint. Register it with RegisterEndpoints like any
// EndpointsFunc, so that the type declares its rule explicitly.
func NoEndpoints(Config) ([]EndpointUse, error) { return nil, nil }

// ErrNoEndpointRule is returned (wrapped with the types) by CheckEndpointRules for trigger types registered without
// an endpoint rule.
var ErrNoEndpointRule = errors.New("no endpoint rule registered (RegisterEndpoints with an EndpointsFunc, or NoEndpoints)")

// RegistryOption configures a Registry.
type RegistryOption func(*Registry)

// WithEndpointPolicy sets the policy for non-default endpoints. Without it, a Registry allows none.
func WithEndpointPolicy(p EndpointPolicy) RegistryOption {
	return func(r *Registry) { r.policy = p }
}

// NewRegistry returns an empty Registry.
func NewRegistry(opts ...RegistryOption) *Registry {
	r := &Registry{factories: map[string]Factory{}, receivers: map[string]ReceiverFactory{}, endpoints: map[string]EndpointsFunc{}}
	for _, o := range opts {
		o(r)
	}
	return r
}

// RegisterEndpoints adds the function that describes triggerType's non-default endpoints: its endpoint rule. Every
// trigger type must register one; a type that cannot talk to an endpoint chosen in its configuration registers
// NoEndpoints.
func (r *Registry) RegisterEndpoints(triggerType string, f EndpointsFunc) error {
	if triggerType == "" || f == nil {
		return fmt.Errorf("registering endpoints of %q: empty trigger type or nil function", triggerType)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.endpoints[triggerType]; ok {
		return fmt.Errorf("registering endpoints of %q: %w", triggerType, ErrDuplicateType)
	}
	r.endpoints[triggerType] = f
	return nil
}

// CheckEndpointRules returns an error wrapping ErrNoEndpointRule, naming the types, when a trigger type has a
// Factory or a ReceiverFactory but no endpoint rule; nil when every type declares one. Call it once the Registry is
// filled: a type without a rule would otherwise be built without the endpoint policy.
func (r *Registry) CheckEndpointRules() error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var missing []string
	note := func(t string) {
		if _, ok := r.endpoints[t]; !ok && !slices.Contains(missing, t) {
			missing = append(missing, t)
		}
	}
	for t := range r.factories {
		note(t)
	}
	for t := range r.receivers {
		note(t)
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	return fmt.Errorf("trigger types %s: %w", strings.Join(missing, ", "), ErrNoEndpointRule)
}

// checkEndpoints applies the endpoint policy to cfg before build (the factory) runs, and returns what build built.
// A configuration the endpoints function cannot read is one the factory refuses too, with the error written for
// that mistake (such as message mode's "needs subscriptionName"): that error is returned; should the factory accept
// it anyway, what it built is closed and the endpoints function's error returned, so nothing the check could not
// vouch for is used.
func checkEndpoints[T io.Closer](r *Registry, cfg Config, build func() (T, error)) (T, error) {
	var zero T
	r.mu.RLock()
	f, policy := r.endpoints[cfg.Type], r.policy
	r.mu.RUnlock()
	if f == nil {
		// Only in a Registry that CheckEndpointRules would refuse (test registries of a fake type): the
		// dispatcher's and the kubectl plugin's are checked when builtin.Registry assembles them.
		return build()
	}
	uses, err := f(cfg)
	if err != nil {
		built, berr := build()
		if berr != nil {
			return zero, berr
		}
		if any(built) != nil {
			_ = built.Close()
		}
		return zero, err
	}
	for _, u := range uses {
		if err := CheckEndpoint(u, policy); err != nil {
			return zero, err
		}
	}
	return build()
}

// Register adds the factory for triggerType. It rejects an empty type or a nil factory, and returns an error
// wrapping ErrDuplicateType when the type is already registered.
func (r *Registry) Register(triggerType string, f Factory) error {
	if triggerType == "" {
		return errors.New("registering trigger source: empty trigger type")
	}
	if f == nil {
		return fmt.Errorf("registering trigger source %q: nil factory", triggerType)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.factories[triggerType]; ok {
		return fmt.Errorf("registering trigger source %q: %w", triggerType, ErrDuplicateType)
	}
	r.factories[triggerType] = f
	return nil
}

// New builds the Source for cfg.Type. An unknown type yields a *ConfigError with Field "type" whose detail lists the
// known types; an endpoint the policy refuses, a *ConfigError from CheckEndpoint. Errors from the factory are
// returned unchanged.
func (r *Registry) New(ctx context.Context, cfg Config) (Source, error) {
	r.mu.RLock()
	f, ok := r.factories[cfg.Type]
	r.mu.RUnlock()
	if !ok {
		known := r.Types()
		if len(known) == 0 {
			return nil, ConfigErrorf("type", "unknown trigger type %q (no trigger types are registered)", cfg.Type)
		}
		return nil, ConfigErrorf("type", "unknown trigger type %q (known types: %s)", cfg.Type, strings.Join(known, ", "))
	}
	return checkEndpoints(r, cfg, func() (Source, error) { return f(ctx, cfg) })
}

// Types returns the registered trigger types, sorted.
func (r *Registry) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	types := make([]string, 0, len(r.factories))
	for t := range r.factories {
		types = append(types, t)
	}
	slices.Sort(types)
	return types
}

// RegisterReceiver adds the message-mode receiver factory for triggerType (its Source must be registered too).
func (r *Registry) RegisterReceiver(triggerType string, f ReceiverFactory) error {
	if triggerType == "" || f == nil {
		return fmt.Errorf("registering receiver %q: empty trigger type or nil factory", triggerType)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.receivers[triggerType]; ok {
		return fmt.Errorf("registering receiver %q: %w", triggerType, ErrDuplicateType)
	}
	r.receivers[triggerType] = f
	return nil
}

// NewReceiver builds the Receiver for cfg.Type; a type without one yields a *ConfigError with Field "type". The
// endpoint policy applies as in New.
func (r *Registry) NewReceiver(ctx context.Context, cfg Config, deadLetter string) (Receiver, error) {
	r.mu.RLock()
	f, ok := r.receivers[cfg.Type]
	r.mu.RUnlock()
	if !ok {
		return nil, ConfigErrorf("type", "trigger type %q cannot be used in message mode", cfg.Type)
	}
	return checkEndpoints(r, cfg, func() (Receiver, error) { return f(ctx, cfg, deadLetter) })
}
