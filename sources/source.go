package sources

import (
	"context"
	"time"
)

// Backlog is one trigger's reading at one moment.
type Backlog struct {
	// Value is Q, the raw backlog: messages for queues, desiredReplicas (or 0) for cron.
	Value float64
	// Target is T, the per-Job target: queueLength, value or messageCount; 1 for cron.
	Target float64
	// Active is the trigger's own activity, e.g. Value > its activation threshold.
	Active bool
	// SampledAt is when Value was measured. Live sources set it to the caller's now; metric-based sources may lag.
	SampledAt time.Time
}

// Source reads one trigger's backlog. Implementations must be safe for concurrent use.
type Source interface {
	// Backlog returns the current reading. now is the caller's clock; implementations never call time.Now to
	// decide anything.
	//
	// Errors: a *ConfigError when the configuration is wrong (permanent: retrying will not help), an error wrapping
	// ErrNotFound when the queue or entity does not exist, and anything else is transient.
	Backlog(ctx context.Context, now time.Time) (Backlog, error)
	// Close releases the source's clients. It is safe to call more than once.
	Close() error
}

// Config is everything a Factory needs, already resolved by the controller (secrets read, env resolved).
type Config struct {
	// Index is the trigger's position in spec.triggers.
	Index int
	// Name is the trigger's name; it may be empty.
	Name string
	// Type is the trigger type, e.g. "aws-sqs-queue".
	Type string
	// Metadata is the trigger metadata as written.
	Metadata map[string]string
	// AuthParams maps TriggerAuthentication secretTargetRef parameters to their secret values.
	AuthParams map[string]string
	// PodIdentity is the TriggerAuthentication's pod identity provider: "", "aws", "gcp" or "azure-workload".
	PodIdentity string
	// Env is the resolved environment of envSourceContainerName, read by `<key>FromEnv` metadata.
	Env map[string]string
}

// Factory builds a Source from its Config. It returns a *ConfigError for a bad configuration. It validates only and
// connects lazily: it must not do network I/O that can fail transiently.
type Factory func(ctx context.Context, cfg Config) (Source, error)
