package sources

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The registry applies the endpoint policy before it builds a Source or a Receiver, so no factory ever runs for a
// refused endpoint.
func TestRegistryEnforcesEndpointPolicy(t *testing.T) {
	ambientOnLocal := func(Config) ([]EndpointUse, error) {
		return []EndpointUse{{Key: "endpoint", Field: "metadata.endpoint", Host: "127.0.0.1", Port: "9", Literal: true,
			SetBy: OriginNamespace, Credentials: OriginAmbient}}, nil
	}
	describeErr := ConfigErrorf("metadata.queue", "is required")
	cases := map[string]struct {
		policy    []RegistryOption
		endpoints EndpointsFunc
		wantField string // of the *ConfigError; "" for success
		wantBuilt bool
	}{
		// A Registry that CheckEndpointRules refuses (builtin.Registry checks the shipped one).
		"no endpoint rule: built unchecked": {
			wantBuilt: true,
		},
		"default endpoints: built": {
			endpoints: func(Config) ([]EndpointUse, error) { return nil, nil },
			wantBuilt: true,
		},
		"refused by the default (empty) policy": {
			endpoints: ambientOnLocal,
			wantField: "metadata.endpoint",
		},
		"refused: allowed host, but the dispatcher's identity": {
			policy:    []RegistryOption{WithEndpointPolicy(EndpointPolicy{Allowed: mustPatterns(t, "127.0.0.1:*")})},
			endpoints: ambientOnLocal,
			wantField: "metadata.endpoint",
		},
		"allowed with both flags": {
			policy:    []RegistryOption{WithEndpointPolicy(EndpointPolicy{Allowed: mustPatterns(t, "127.0.0.1:*"), AllowAmbientCredentials: true})},
			endpoints: ambientOnLocal,
			wantBuilt: true,
		},
		// The factory runs to give its own error for the mistake; this one accepts the configuration, so what it
		// built is closed and the describer's error returned.
		"the describer's configuration error is returned": {
			endpoints: func(Config) ([]EndpointUse, error) { return nil, describeErr },
			wantField: "metadata.queue",
			wantBuilt: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			built := 0
			r := NewRegistry(tc.policy...)
			if err := r.Register("fake", func(context.Context, Config) (Source, error) { built++; return &fakeSource{}, nil }); err != nil {
				t.Fatal(err)
			}
			if err := r.RegisterReceiver("fake", func(context.Context, Config, string) (Receiver, error) { built++; return nil, nil }); err != nil {
				t.Fatal(err)
			}
			if tc.endpoints != nil {
				if err := r.RegisterEndpoints("fake", tc.endpoints); err != nil {
					t.Fatal(err)
				}
			}
			_, srcErr := r.New(t.Context(), Config{Type: "fake"})
			_, recvErr := r.NewReceiver(t.Context(), Config{Type: "fake"}, "")
			for what, err := range map[string]error{"New": srcErr, "NewReceiver": recvErr} {
				var ce *ConfigError
				switch {
				case tc.wantField == "" && err != nil:
					t.Errorf("%s: %v, want no error", what, err)
				case tc.wantField != "" && !errors.As(err, &ce):
					t.Errorf("%s: %v, want a *ConfigError", what, err)
				case tc.wantField != "" && ce.Field != tc.wantField:
					t.Errorf("%s: field %s, want %s", what, ce.Field, tc.wantField)
				}
			}
			want := 0
			if tc.wantBuilt {
				want = 2
			}
			if diff := cmp.Diff(want, built); diff != "" {
				t.Errorf("factories run (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRegisterEndpointsRejects(t *testing.T) {
	r := NewRegistry()
	f := func(Config) ([]EndpointUse, error) { return nil, nil }
	if err := r.RegisterEndpoints("", f); err == nil {
		t.Errorf("empty type: no error")
	}
	if err := r.RegisterEndpoints("x", nil); err == nil {
		t.Errorf("nil function: no error")
	}
	if err := r.RegisterEndpoints("x", f); err != nil {
		t.Fatal(err)
	}
	if err := r.RegisterEndpoints("x", f); !errors.Is(err, ErrDuplicateType) {
		t.Errorf("second registration: %v, want ErrDuplicateType", err)
	}
}

// Every type with a Factory or a ReceiverFactory must declare its endpoint rule; NoEndpoints is the rule of a type
// without an endpoint parameter, and such a type builds under the default (empty) policy.
func TestCheckEndpointRules(t *testing.T) {
	r := NewRegistry()
	if err := r.CheckEndpointRules(); err != nil {
		t.Errorf("empty registry: %v, want nil", err)
	}
	factory := func(context.Context, Config) (Source, error) { return &fakeSource{}, nil }
	for _, typ := range []string{"source-only", "both", "described"} {
		if err := r.Register(typ, factory); err != nil {
			t.Fatal(err)
		}
	}
	for _, typ := range []string{"both", "receiver-only"} {
		if err := r.RegisterReceiver(typ, func(context.Context, Config, string) (Receiver, error) { return nil, nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.RegisterEndpoints("described", func(Config) ([]EndpointUse, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	err := r.CheckEndpointRules()
	if !errors.Is(err, ErrNoEndpointRule) {
		t.Fatalf("CheckEndpointRules = %v, want ErrNoEndpointRule", err)
	}
	if want := "trigger types both, receiver-only, source-only: " + ErrNoEndpointRule.Error(); err.Error() != want {
		t.Errorf("CheckEndpointRules = %q, want %q", err, want)
	}
	for _, typ := range []string{"source-only", "both", "receiver-only"} {
		if err := r.RegisterEndpoints(typ, NoEndpoints); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.CheckEndpointRules(); err != nil {
		t.Errorf("every type declares its rule: %v, want nil", err)
	}
	if _, err := r.New(t.Context(), Config{Type: "source-only"}); err != nil {
		t.Errorf("a NoEndpoints type under the empty policy: %v, want built", err)
	}
}
