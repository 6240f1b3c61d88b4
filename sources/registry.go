package sources

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Registry maps trigger types to the factories that build their sources. Build one per process with NewRegistry and
// fill it with each trigger package's Register function. It is safe for concurrent use.
type Registry struct {
	mu        sync.RWMutex
	factories map[string]Factory
	receivers map[string]ReceiverFactory
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry {
	return &Registry{factories: map[string]Factory{}, receivers: map[string]ReceiverFactory{}}
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
// known types. Errors from the factory are returned unchanged.
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
	return f(ctx, cfg)
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

// NewReceiver builds the Receiver for cfg.Type; a type without one yields a *ConfigError with Field "type".
func (r *Registry) NewReceiver(ctx context.Context, cfg Config, deadLetter string) (Receiver, error) {
	r.mu.RLock()
	f, ok := r.receivers[cfg.Type]
	r.mu.RUnlock()
	if !ok {
		return nil, ConfigErrorf("type", "trigger type %q cannot be used in message mode", cfg.Type)
	}
	return f(ctx, cfg, deadLetter)
}
