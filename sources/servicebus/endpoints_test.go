package servicebus

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kubedispatch/kubedispatch/internal/sourcetest"
	"github.com/kubedispatch/kubedispatch/sources"
)

func TestEndpoints(t *testing.T) {
	private := []sourcetest.Option{workloadIdentity, sourcetest.WithMetadata("namespace", "jobs"),
		sourcetest.WithMetadata("cloud", "Private")}
	with := func(opts ...sourcetest.Option) sources.Config {
		return trigger(append(append([]sourcetest.Option{}, private...), opts...)...)
	}
	cases := map[string]struct {
		cfg  sources.Config
		want []sources.EndpointUse
	}{
		"connection string (the credential names its own endpoint)": {
			cfg: trigger(sourcetest.WithEnv("SB_CONN", connString("127.0.0.1:5671"))),
		},
		"workload identity, public cloud": {
			cfg: trigger(workloadIdentity, sourcetest.WithMetadata("namespace", "jobs")),
		},
		"workload identity, a known cloud's suffix under Private": {
			cfg: with(sourcetest.WithMetadata("endpointSuffix", "servicebus.usgovcloudapi.net")),
		},
		"workload identity, private suffix": {
			cfg: with(sourcetest.WithMetadata("endpointSuffix", "Attacker.Example")),
			want: []sources.EndpointUse{{Key: "endpointSuffix", Field: "metadata.endpointSuffix", Host: "jobs.attacker.example",
				Literal: true, SetBy: sources.OriginNamespace, Credentials: sources.OriginAmbient}},
		},
		"private suffix from env": {
			cfg: with(sourcetest.WithMetadata("endpointSuffixFromEnv", "SUFFIX"), sourcetest.WithEnv("SUFFIX", "sb.internal.example.com")),
			want: []sources.EndpointUse{{Key: "endpointSuffix", Field: "metadata.endpointSuffixFromEnv", Host: "jobs.sb.internal.example.com",
				SetBy: sources.OriginNamespace, Credentials: sources.OriginAmbient}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := Endpoints(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("endpoints mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// podIdentity azure-workload with endpointSuffix attacker.example would hand the dispatcher's Azure AD token to
// jobs.attacker.example: the registry refuses it, allow-listed or not, unless ambient credentials are allowed.
func TestRegisteredEndpointPolicy(t *testing.T) {
	allowed, err := sources.ParseHostPatterns("*.attacker.example")
	if err != nil {
		t.Fatal(err)
	}
	cfg := trigger(workloadIdentity, sourcetest.WithMetadata("namespace", "jobs"), sourcetest.WithMetadata("cloud", "Private"),
		sourcetest.WithMetadata("endpointSuffix", "attacker.example"))
	for name, policy := range map[string]sources.EndpointPolicy{"empty allow-list": {}, "allow-listed": {Allowed: allowed}} {
		r := sources.NewRegistry(sources.WithEndpointPolicy(policy))
		if err := Register(r); err != nil {
			t.Fatal(err)
		}
		_, err := r.New(t.Context(), cfg)
		if !sources.IsConfigError(err) || !strings.Contains(err.Error(), "metadata.endpointSuffix") ||
			!strings.Contains(err.Error(), "--allow-ambient-credentials-on-custom-endpoints") {
			t.Errorf("%s: New = %v, want a refusal of metadata.endpointSuffix naming the flag", name, err)
		}
		if _, err := r.NewReceiver(t.Context(), cfg, ""); !sources.IsConfigError(err) {
			t.Errorf("%s: NewReceiver = %v, want a ConfigError", name, err)
		}
	}
}

// Values from a `<key>FromEnv` variable (possibly a Secret) or a TriggerAuthentication are never quoted in a parse
// error.
func TestParseErrorsHideValues(t *testing.T) {
	const secret = "SECRETVALUE42"
	wi := []sourcetest.Option{workloadIdentity, sourcetest.WithMetadata("namespace", "jobs")}
	cases := map[string]struct {
		cfg       sources.Config
		wantField string
	}{
		"messageCount": {
			cfg:       trigger(sourcetest.WithMetadata("messageCountFromEnv", "V"), sourcetest.WithEnv("V", secret)),
			wantField: "metadata.messageCountFromEnv",
		},
		"messageCount below 1": {
			cfg:       trigger(sourcetest.WithAuth("messageCount", "-4242")),
			wantField: sources.AuthField,
		},
		"queueName regular expression": {
			cfg: trigger(sourcetest.WithoutMetadata("queueName"), sourcetest.WithMetadata("queueNameFromEnv", "V"),
				sourcetest.WithEnv("V", "("+secret), sourcetest.WithMetadata("useRegex", "true")),
			wantField: "metadata.queueNameFromEnv",
		},
		"operation": {
			cfg:       trigger(sourcetest.WithAuth("operation", secret)),
			wantField: sources.AuthField,
		},
		"namespace": {
			cfg:       trigger(workloadIdentity, sourcetest.WithMetadata("namespaceFromEnv", "V"), sourcetest.WithEnv("V", secret+".x")),
			wantField: "metadata.namespaceFromEnv",
		},
		"cloud": {
			cfg:       trigger(append(wi, sourcetest.WithMetadata("cloudFromEnv", "V"), sourcetest.WithEnv("V", secret))...),
			wantField: "metadata.cloudFromEnv",
		},
		"endpointSuffix": {
			cfg: trigger(append(wi, sourcetest.WithMetadata("cloud", "Private"), sourcetest.WithMetadata("endpointSuffixFromEnv", "V"),
				sourcetest.WithEnv("V", secret))...),
			wantField: "metadata.endpointSuffixFromEnv",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(tc.cfg)
			if !sources.IsConfigError(err) {
				t.Fatalf("Parse: %v, want a ConfigError", err)
			}
			ce := err.(*sources.ConfigError)
			if ce.Field != tc.wantField {
				t.Errorf("field %s, want %s (%v)", ce.Field, tc.wantField, ce)
			}
			if strings.Contains(ce.Error(), secret) || strings.Contains(ce.Error(), "4242") {
				t.Errorf("error %q shows the value", ce.Error())
			}
		})
	}
}
