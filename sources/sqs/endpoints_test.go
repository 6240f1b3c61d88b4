package sqs

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kubedispatch/kubedispatch/internal/sourcetest"
	"github.com/kubedispatch/kubedispatch/sources"
)

func withAuthOrigin(o sources.Origin) sourcetest.Option {
	return func(c *sources.Config) { c.AuthOrigin = o }
}

var staticKeys = []sourcetest.Option{sourcetest.WithAuth("awsAccessKeyID", "AKIAEXAMPLE"), sourcetest.WithAuth("awsSecretAccessKey", "s")}

func TestEndpoints(t *testing.T) {
	const moto = "http://127.0.0.1:4566"
	local := func(mod func(*sources.EndpointUse)) []sources.EndpointUse {
		u := sources.EndpointUse{Key: "awsEndpoint", Field: "metadata.awsEndpoint", Host: "127.0.0.1", Port: "4566",
			Literal: true, SetBy: sources.OriginNamespace, Credentials: sources.OriginAmbient}
		if mod != nil {
			mod(&u)
		}
		return []sources.EndpointUse{u}
	}
	cases := map[string]struct {
		cfg      sources.Config
		operator []string
		want     []sources.EndpointUse
	}{
		"no awsEndpoint": {cfg: trigger()},
		"AWS's regional endpoint": {
			cfg: trigger(sourcetest.WithMetadata("awsEndpoint", "https://sqs.eu-west-1.amazonaws.com")),
		},
		"AWS's FIPS endpoint": {
			cfg: trigger(sourcetest.WithMetadata("awsEndpoint", "https://sqs-fips.us-gov-west-1.amazonaws.com:443/")),
		},
		"AWS's China partition": {
			cfg: trigger(sourcetest.WithMetadata("awsEndpoint", "https://sqs.cn-north-1.amazonaws.com.cn")),
		},
		"a VPC interface endpoint": {
			cfg: trigger(sourcetest.WithMetadata("awsEndpoint", "https://vpce-0a1b2c3d-e4f5.sqs.eu-west-1.vpce.amazonaws.com")),
		},
		"an AWS host over plain http is not AWS's endpoint": {
			cfg: trigger(sourcetest.WithMetadata("awsEndpoint", "http://sqs.eu-west-1.amazonaws.com")),
			want: []sources.EndpointUse{{Key: "awsEndpoint", Field: "metadata.awsEndpoint", Host: "sqs.eu-west-1.amazonaws.com",
				Literal: true, SetBy: sources.OriginNamespace, Credentials: sources.OriginAmbient}},
		},
		"a look-alike host": {
			cfg: trigger(sourcetest.WithMetadata("awsEndpoint", "https://sqs.eu-west-1.amazonaws.com.attacker.example")),
			want: []sources.EndpointUse{{Key: "awsEndpoint", Field: "metadata.awsEndpoint", Host: "sqs.eu-west-1.amazonaws.com.attacker.example",
				Literal: true, SetBy: sources.OriginNamespace, Credentials: sources.OriginAmbient}},
		},
		"the endpoint the operator configured (AWS_ENDPOINT_URL_SQS)": {
			cfg:      trigger(sourcetest.WithMetadata("awsEndpoint", moto+"/")),
			operator: []string{moto},
		},
		"another port than the operator's": {
			cfg:      trigger(sourcetest.WithMetadata("awsEndpoint", "http://127.0.0.1:4566")),
			operator: []string{"http://127.0.0.1:4567"},
			want:     local(nil),
		},
		"default credentials chain": {
			cfg:  trigger(sourcetest.WithMetadata("awsEndpoint", moto)),
			want: local(nil),
		},
		"pod identity aws": {
			cfg:  trigger(sourcetest.WithMetadata("awsEndpoint", moto), sourcetest.WithPodIdentity("aws"), withAuthOrigin(sources.OriginNamespace)),
			want: local(nil),
		},
		"a role assumed with the dispatcher's identity": {
			cfg: trigger(sourcetest.WithMetadata("awsEndpoint", moto), sourcetest.WithPodIdentity("aws"),
				sourcetest.WithAuth("awsRoleArn", "arn:aws:iam::123456789012:role/r"), withAuthOrigin(sources.OriginNamespace)),
			want: local(nil),
		},
		"access keys of a TriggerAuthentication": {
			cfg:  trigger(append(staticKeys, sourcetest.WithMetadata("awsEndpoint", moto), withAuthOrigin(sources.OriginNamespace))...),
			want: local(func(u *sources.EndpointUse) { u.Credentials = sources.OriginNamespace }),
		},
		"access keys of a ClusterTriggerAuthentication": {
			cfg:  trigger(append(staticKeys, sourcetest.WithMetadata("awsEndpoint", moto), withAuthOrigin(sources.OriginCluster))...),
			want: local(func(u *sources.EndpointUse) { u.Credentials = sources.OriginCluster }),
		},
		"awsEndpoint from env is not literal": {
			cfg: trigger(append(staticKeys, sourcetest.WithMetadata("awsEndpointFromEnv", "EP"), sourcetest.WithEnv("EP", moto),
				withAuthOrigin(sources.OriginNamespace))...),
			want: local(func(u *sources.EndpointUse) {
				u.Field, u.Literal, u.Credentials = "metadata.awsEndpointFromEnv", false, sources.OriginNamespace
			}),
		},
		"awsEndpoint set by a ClusterTriggerAuthentication": {
			cfg: trigger(sourcetest.WithAuth("awsEndpoint", moto), withAuthOrigin(sources.OriginCluster)),
			want: local(func(u *sources.EndpointUse) {
				u.Field, u.Literal, u.SetBy = sources.AuthField, false, sources.OriginCluster
			}),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := endpointsFunc(tc.operator)(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("endpoints mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOperatorEndpoints(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	cases := map[string]struct {
		env  map[string]string
		want []string
	}{
		"none": {},
		"both": {env: map[string]string{"AWS_ENDPOINT_URL_SQS": "http://moto:5000", "AWS_ENDPOINT_URL": "http://all:1"},
			want: []string{"http://moto:5000", "http://all:1"}},
		"ignored": {env: map[string]string{"AWS_ENDPOINT_URL_SQS": "http://moto:5000", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, operatorEndpoints(env(tc.env))); diff != "" {
				t.Errorf("operatorEndpoints (-want +got):\n%s", diff)
			}
		})
	}
}

// Through Register, the registry refuses a custom awsEndpoint with the dispatcher's own credentials before any client
// exists, naming the field and the flag, and builds it with the namespace's access keys once allowed.
func TestRegisteredEndpointPolicy(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL_SQS", "")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "env")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "env")
	allowed, err := sources.ParseHostPatterns("127.0.0.1:*")
	if err != nil {
		t.Fatal(err)
	}
	r := sources.NewRegistry(sources.WithEndpointPolicy(sources.EndpointPolicy{Allowed: allowed}))
	if err := Register(r); err != nil {
		t.Fatal(err)
	}
	ambient := trigger(sourcetest.WithMetadata("awsEndpoint", "http://127.0.0.1:4566"))
	_, err = r.New(t.Context(), ambient)
	var ce *sources.ConfigError
	if !sources.IsConfigError(err) {
		t.Fatalf("New with the default credentials on a custom endpoint: %v, want a ConfigError", err)
	}
	ce = err.(*sources.ConfigError)
	if ce.Field != "metadata.awsEndpoint" || !strings.Contains(ce.Detail, "--allow-ambient-credentials-on-custom-endpoints") {
		t.Errorf("refusal %v, want metadata.awsEndpoint naming --allow-ambient-credentials-on-custom-endpoints", ce)
	}
	if _, err := r.NewReceiver(t.Context(), ambient, ""); !sources.IsConfigError(err) {
		t.Errorf("NewReceiver with the default credentials on a custom endpoint: %v, want a ConfigError", err)
	}
	ns := trigger(append(staticKeys, sourcetest.WithMetadata("awsEndpoint", "http://127.0.0.1:4566"), withAuthOrigin(sources.OriginNamespace))...)
	if _, err := r.New(t.Context(), ns); err != nil {
		t.Errorf("New with a TriggerAuthentication's keys on an allowed endpoint: %v", err)
	}
	other := trigger(append(staticKeys, sourcetest.WithMetadata("awsEndpoint", "https://sqs.attacker.example"), withAuthOrigin(sources.OriginNamespace))...)
	if _, err := r.New(t.Context(), other); !sources.IsConfigError(err) || !strings.Contains(err.Error(), "--allowed-endpoints") {
		t.Errorf("New on a host that is not allowed: %v, want a ConfigError naming --allowed-endpoints", err)
	}
}

// Values from a `<key>FromEnv` variable (possibly a Secret) or a TriggerAuthentication are never quoted in a parse
// error.
func TestParseErrorsHideValues(t *testing.T) {
	const secret = "SECRET-VALUE-42"
	cases := map[string]struct {
		cfg       sources.Config
		wantField string
	}{
		"queueURL from env without a queue": {
			cfg:       trigger(sourcetest.WithoutMetadata("queueURL"), sourcetest.WithMetadata("queueURLFromEnv", "Q"), sourcetest.WithEnv("Q", "https://"+secret+"/")),
			wantField: "metadata.queueURLFromEnv",
		},
		"awsEndpoint from env that is no URL": {
			cfg:       trigger(sourcetest.WithMetadata("awsEndpointFromEnv", "EP"), sourcetest.WithEnv("EP", secret)),
			wantField: "metadata.awsEndpointFromEnv",
		},
		"queueLength from env that is no integer": {
			cfg:       trigger(sourcetest.WithMetadata("queueLengthFromEnv", "N"), sourcetest.WithEnv("N", secret)),
			wantField: "metadata.queueLengthFromEnv",
		},
		"queueLength from a TriggerAuthentication below 1": {
			cfg:       trigger(sourcetest.WithAuth("queueLength", "-42")),
			wantField: sources.AuthField,
		},
		"scaleOnInFlight from env that is no boolean": {
			cfg:       trigger(sourcetest.WithMetadata("scaleOnInFlightFromEnv", "B"), sourcetest.WithEnv("B", secret)),
			wantField: "metadata.scaleOnInFlightFromEnv",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(tc.cfg)
			var ce *sources.ConfigError
			if !sources.IsConfigError(err) {
				t.Fatalf("Parse: %v, want a ConfigError", err)
			}
			ce = err.(*sources.ConfigError)
			if ce.Field != tc.wantField {
				t.Errorf("field %s, want %s", ce.Field, tc.wantField)
			}
			if strings.Contains(ce.Error(), secret) || strings.Contains(ce.Error(), "-42") {
				t.Errorf("error %q shows the value", ce.Error())
			}
		})
	}
}
