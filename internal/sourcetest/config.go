package sourcetest

import "github.com/kubedispatch/kubedispatch/sources"

// Option changes a sources.Config that Config is building.
type Option func(*sources.Config)

// Config returns a sources.Config of trigger type typ changed by opts, in order. Its maps are nil until an option
// writes to them, as in a Config the controller resolved without auth parameters or environment.
func Config(typ string, opts ...Option) sources.Config {
	cfg := sources.Config{Type: typ}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// WithMetadata sets the trigger metadata key to value.
func WithMetadata(key, value string) Option {
	return func(c *sources.Config) {
		if c.Metadata == nil {
			c.Metadata = map[string]string{}
		}
		c.Metadata[key] = value
	}
}

// WithoutMetadata removes the trigger metadata key.
func WithoutMetadata(key string) Option {
	return func(c *sources.Config) { delete(c.Metadata, key) }
}

// WithAuth sets the TriggerAuthentication parameter key to value.
func WithAuth(key, value string) Option {
	return func(c *sources.Config) {
		if c.AuthParams == nil {
			c.AuthParams = map[string]string{}
		}
		c.AuthParams[key] = value
	}
}

// WithEnv sets the variable key of the resolved container environment to value.
func WithEnv(key, value string) Option {
	return func(c *sources.Config) {
		if c.Env == nil {
			c.Env = map[string]string{}
		}
		c.Env[key] = value
	}
}

// WithPodIdentity sets the TriggerAuthentication's pod identity provider, e.g. "aws", "gcp" or "azure-workload".
func WithPodIdentity(provider string) Option {
	return func(c *sources.Config) { c.PodIdentity = provider }
}
