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
	// Occurrence is set by a cron trigger with runsPerWindow: the window occurrence the reading is about. Value
	// is then runsPerWindow, the Jobs the occurrence wants in total; the dispatcher subtracts those it has
	// created for it already.
	Occurrence *Occurrence
}

// Occurrence is one opening of a cron window: from Start to End.
type Occurrence struct {
	// Start is when the occurrence opened, End when it closes (or closed).
	Start, End time.Time
	// Open is true while now is inside the occurrence.
	Open bool
	// Runs is the number of Jobs the occurrence wants in total (runsPerWindow).
	Runs int64
	// StartingDeadline, when positive, is how long after Start the occurrence may still be served for the first
	// time (after downtime); zero means only while it is open.
	StartingDeadline time.Duration
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
	// AuthOrigin is whose AuthParams and PodIdentity are: OriginNamespace for a TriggerAuthentication in the
	// ScaledJob's namespace, OriginCluster for a ClusterTriggerAuthentication, "" without authenticationRef.
	AuthOrigin Origin
	// Env is the resolved environment of envSourceContainerName, read by `<key>FromEnv` metadata. For
	// `<key>FromEnvFile` metadata it holds the variable's value: a path in that container.
	Env map[string]string
	// EnvFiles maps a variable named by `<key>FromEnvFile` metadata to the content of the file its value names,
	// which the controller read from the Secret that the envSourceContainerName container mounts at that path (it
	// never reads its own file system). At most MaxValueBytes each.
	EnvFiles map[string]string
}

// MaxValueBytes bounds every value the controller resolves for a trigger: a Secret key, an env value, a mounted
// file. 64 KiB holds any credential these sources take (a service account key is about 2.3 KiB).
const MaxValueBytes = 64 << 10

// Factory builds a Source from its Config. It returns a *ConfigError for a bad configuration. It validates only and
// connects lazily: it must not do network I/O that can fail transiently.
type Factory func(ctx context.Context, cfg Config) (Source, error)
