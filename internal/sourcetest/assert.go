package sourcetest

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kubedispatch/kubedispatch/sources"
)

// AssertConfigError fails t unless err is (or wraps) a *sources.ConfigError equal to want, or both are nil. Only a
// different Field or Detail lets the test go on, so the caller may use a non-nil err afterwards.
func AssertConfigError(t testing.TB, err error, want *sources.ConfigError) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	var ce *sources.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("error = %v, want *sources.ConfigError %v", err, want)
	}
	if diff := cmp.Diff(want, ce); diff != "" {
		t.Errorf("ConfigError mismatch (-want +got):\n%s", diff)
	}
}

// AssertRegister checks a source package's Register function: it registers into a new Registry, a second call fails
// with sources.ErrDuplicateType, and the Registry's New rejects bad with a *sources.ConfigError. It returns the
// Registry for the caller's own checks.
func AssertRegister(t testing.TB, register func(*sources.Registry) error, bad sources.Config) *sources.Registry {
	t.Helper()
	r := sources.NewRegistry()
	if err := register(r); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if err := register(r); !errors.Is(err, sources.ErrDuplicateType) {
		t.Errorf("second Register error = %v, want ErrDuplicateType", err)
	}
	if _, err := r.New(t.Context(), bad); !sources.IsConfigError(err) {
		t.Errorf("registry New with a bad config: error = %v, want a ConfigError", err)
	}
	return r
}

// AssertBacklogError checks an error from Source.Backlog: it must be a runtime error, not a *sources.ConfigError, and
// wrap sources.ErrNotFound exactly when wantNotFound. A nil err stops the test.
func AssertBacklogError(t testing.TB, err error, wantNotFound bool) {
	t.Helper()
	if err == nil {
		t.Fatalf("Backlog error = nil, want an error")
	}
	if sources.IsConfigError(err) {
		t.Errorf("Backlog error %v is a ConfigError, want transient or not found", err)
	}
	if got := errors.Is(err, sources.ErrNotFound); got != wantNotFound {
		t.Errorf("errors.Is(%v, ErrNotFound) = %v, want %v", err, got, wantNotFound)
	}
}
