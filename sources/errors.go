package sources

import (
	"errors"
	"fmt"
)

// ErrDuplicateType is returned (wrapped with the type) when a trigger type is registered twice.
var ErrDuplicateType = errors.New("duplicate trigger type")

// ErrNotFound is wrapped by Backlog errors when the queue or entity a trigger reads does not exist.
var ErrNotFound = errors.New("not found")

// ConfigError is a permanent configuration error. Field names the offending field relative to the trigger, e.g.
// "metadata.queueURL", "metadata.queueLength", "authenticationRef" or "type".
type ConfigError struct {
	Field  string
	Detail string
}

// Error returns "<field>: <detail>".
func (e *ConfigError) Error() string {
	return e.Field + ": " + e.Detail
}

// ConfigErrorf returns a *ConfigError for field with a formatted detail.
func ConfigErrorf(field, format string, args ...any) *ConfigError {
	return &ConfigError{Field: field, Detail: fmt.Sprintf(format, args...)}
}

// IsConfigError reports whether err is or wraps a *ConfigError.
func IsConfigError(err error) bool {
	var ce *ConfigError
	return errors.As(err, &ce)
}

// ErrUnauthorized is wrapped by Backlog errors when the queue refused the credentials (a wrong, expired or rotated
// key). The caller resolves the trigger's credentials again before the next reading.
var ErrUnauthorized = errors.New("credentials refused")

// Endpointer is implemented by sources that talk to a network endpoint. Endpoint names it (e.g. a host), so the
// caller can back off per endpoint: one dead endpoint slows only the triggers that use it.
type Endpointer interface {
	Endpoint() string
}
