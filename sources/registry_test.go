package sources

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeSource is a Source that returns a fixed reading.
type fakeSource struct {
	cfg Config
}

func (f *fakeSource) Backlog(_ context.Context, now time.Time) (Backlog, error) {
	return Backlog{Value: 1, Target: 1, Active: true, SampledAt: now}, nil
}

func (f *fakeSource) Close() error { return nil }

func fakeFactory(_ context.Context, cfg Config) (Source, error) {
	return &fakeSource{cfg: cfg}, nil
}

func TestRegistryRegister(t *testing.T) {
	cases := map[string]struct {
		preset   []string
		typ      string
		factory  Factory
		wantErr  bool
		wantDup  bool
		wantList []string
	}{
		"first registration": {
			typ:      "cron",
			factory:  fakeFactory,
			wantList: []string{"cron"},
		},
		"types are sorted": {
			preset:   []string{"gcp-pubsub", "cron"},
			typ:      "aws-sqs-queue",
			factory:  fakeFactory,
			wantList: []string{"aws-sqs-queue", "cron", "gcp-pubsub"},
		},
		"duplicate": {
			preset:   []string{"cron"},
			typ:      "cron",
			factory:  fakeFactory,
			wantErr:  true,
			wantDup:  true,
			wantList: []string{"cron"},
		},
		"empty type": {
			typ:      "",
			factory:  fakeFactory,
			wantErr:  true,
			wantList: []string{},
		},
		"nil factory": {
			typ:      "cron",
			wantErr:  true,
			wantList: []string{},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := NewRegistry()
			for _, p := range tc.preset {
				if err := r.Register(p, fakeFactory); err != nil {
					t.Fatalf("Register(%q): %v", p, err)
				}
			}
			err := r.Register(tc.typ, tc.factory)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Register(%q) error = %v, want error %v", tc.typ, err, tc.wantErr)
			}
			if got := errors.Is(err, ErrDuplicateType); got != tc.wantDup {
				t.Errorf("errors.Is(%v, ErrDuplicateType) = %v, want %v", err, got, tc.wantDup)
			}
			if tc.wantDup && !strings.Contains(err.Error(), tc.typ) {
				t.Errorf("duplicate error %q does not name the type %q", err, tc.typ)
			}
			if diff := cmp.Diff(tc.wantList, r.Types()); diff != "" {
				t.Errorf("Types() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRegistryNew(t *testing.T) {
	cases := map[string]struct {
		registered []string
		cfg        Config
		wantErr    *ConfigError
	}{
		"known type": {
			registered: []string{"cron", "aws-sqs-queue"},
			cfg:        Config{Index: 2, Type: "cron", Metadata: map[string]string{"a": "b"}},
		},
		"unknown type lists known types": {
			registered: []string{"cron", "aws-sqs-queue"},
			cfg:        Config{Type: "kafka"},
			wantErr: &ConfigError{
				Field:  "type",
				Detail: `unknown trigger type "kafka" (known types: aws-sqs-queue, cron)`,
			},
		},
		"empty registry": {
			cfg: Config{Type: "cron"},
			wantErr: &ConfigError{
				Field:  "type",
				Detail: `unknown trigger type "cron" (no trigger types are registered)`,
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := NewRegistry()
			for _, typ := range tc.registered {
				if err := r.Register(typ, fakeFactory); err != nil {
					t.Fatalf("Register(%q): %v", typ, err)
				}
			}
			src, err := r.New(context.Background(), tc.cfg)
			if tc.wantErr != nil {
				var ce *ConfigError
				if !errors.As(err, &ce) {
					t.Fatalf("New() error = %v, want a *ConfigError", err)
				}
				if diff := cmp.Diff(tc.wantErr, ce); diff != "" {
					t.Errorf("New() error mismatch (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(): %v", err)
			}
			fs, ok := src.(*fakeSource)
			if !ok {
				t.Fatalf("New() = %T, want *fakeSource", src)
			}
			if diff := cmp.Diff(tc.cfg, fs.cfg); diff != "" {
				t.Errorf("factory got config mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRegistryNewPassesFactoryErrorsThrough(t *testing.T) {
	want := ConfigErrorf("metadata.x", "bad")
	r := NewRegistry()
	err := r.Register("t", func(context.Context, Config) (Source, error) { return nil, want })
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	_, err = r.New(context.Background(), Config{Type: "t"})
	if !errors.Is(err, want) {
		t.Errorf("New() error = %v, want the factory's error %v", err, want)
	}
}

func TestConfigError(t *testing.T) {
	err := error(ConfigErrorf("metadata.queueLength", "%q is not an integer", "x"))
	if got, want := err.Error(), `metadata.queueLength: "x" is not an integer`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	wrapped := errors.Join(errors.New("other"), err)
	cases := map[string]struct {
		err  error
		want bool
	}{
		"direct":  {err: err, want: true},
		"wrapped": {err: wrapped, want: true},
		"other":   {err: ErrNotFound, want: false},
		"nil":     {err: nil, want: false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := IsConfigError(tc.err); got != tc.want {
				t.Errorf("IsConfigError(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
