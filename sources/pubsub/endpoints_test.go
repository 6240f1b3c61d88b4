package pubsub

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

func TestEndpoints(t *testing.T) {
	t.Setenv("GOOGLE_CLOUD_PROJECT", "env-project")
	const fake = "127.0.0.1:8443"
	use := func(mod func(*sources.EndpointUse)) []sources.EndpointUse {
		u := sources.EndpointUse{Key: "monitoringEndpoint", Field: "metadata.monitoringEndpoint", Host: "127.0.0.1", Port: "8443",
			Literal: true, SetBy: sources.OriginNamespace, Credentials: sources.OriginNamespace}
		if mod != nil {
			mod(&u)
		}
		return []sources.EndpointUse{u}
	}
	endpoint := sourcetest.WithMetadata("monitoringEndpoint", fake)
	cases := map[string]struct {
		cfg  sources.Config
		want []sources.EndpointUse
	}{
		"no monitoringEndpoint": {cfg: trigger()},
		"Cloud Monitoring's own endpoint": {
			cfg: trigger(sourcetest.WithMetadata("monitoringEndpoint", "monitoring.googleapis.com:443")),
		},
		"key from credentialsFromEnv": {
			cfg:  trigger(endpoint),
			want: use(nil),
		},
		"key from credentialsFromEnvFile": {
			cfg: trigger(noCredentials, endpoint, sourcetest.WithMetadata("credentialsFromEnvFile", "F"),
				sourcetest.WithEnv("F", "/var/secrets/key.json"), withEnvFile("F", saKey("file-project"))),
			want: use(nil),
		},
		"key from a TriggerAuthentication": {
			cfg:  trigger(noCredentials, endpoint, sourcetest.WithAuth("GoogleApplicationCredentials", saKey("auth-project")), withAuthOrigin(sources.OriginNamespace)),
			want: use(nil),
		},
		"key from a ClusterTriggerAuthentication": {
			cfg:  trigger(noCredentials, endpoint, sourcetest.WithAuth("GoogleApplicationCredentials", saKey("cluster-project")), withAuthOrigin(sources.OriginCluster)),
			want: use(func(u *sources.EndpointUse) { u.Credentials = sources.OriginCluster }),
		},
		"pod identity gcp": {
			cfg:  trigger(noCredentials, endpoint, sourcetest.WithPodIdentity("gcp"), withAuthOrigin(sources.OriginNamespace)),
			want: use(func(u *sources.EndpointUse) { u.Credentials = sources.OriginAmbient }),
		},
		"monitoringInsecure sends no credentials": {
			cfg:  trigger(endpoint, sourcetest.WithMetadata("monitoringInsecure", "true")),
			want: use(func(u *sources.EndpointUse) { u.Credentials = sources.OriginNone }),
		},
		"the default host in plaintext is not the default endpoint": {
			cfg: trigger(sourcetest.WithMetadata("monitoringEndpoint", "monitoring.googleapis.com:443"), sourcetest.WithMetadata("monitoringInsecure", "true")),
			want: use(func(u *sources.EndpointUse) {
				u.Host, u.Port, u.Credentials = "monitoring.googleapis.com", "", sources.OriginNone
			}),
		},
		"endpoint from env": {
			cfg:  trigger(sourcetest.WithMetadata("monitoringEndpointFromEnv", "EP"), sourcetest.WithEnv("EP", fake)),
			want: use(func(u *sources.EndpointUse) { u.Field, u.Literal = "metadata.monitoringEndpointFromEnv", false }),
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

// The reproduction: a monitoringEndpoint the tenant controls, with the dispatcher's own identity or a
// ClusterTriggerAuthentication's key, is refused by the registry (allow-listed or not) before a client exists.
func TestRegisteredEndpointPolicy(t *testing.T) {
	t.Setenv("GOOGLE_CLOUD_PROJECT", "env-project")
	allowed, err := sources.ParseHostPatterns("127.0.0.1:*")
	if err != nil {
		t.Fatal(err)
	}
	r := sources.NewRegistry(sources.WithEndpointPolicy(sources.EndpointPolicy{Allowed: allowed}))
	if err := Register(r); err != nil {
		t.Fatal(err)
	}
	endpoint := sourcetest.WithMetadata("monitoringEndpoint", "127.0.0.1:8443")
	refused := map[string]sources.Config{
		"pod identity": trigger(noCredentials, endpoint, sourcetest.WithPodIdentity("gcp"), withAuthOrigin(sources.OriginNamespace)),
		"ClusterTriggerAuthentication key": trigger(noCredentials, endpoint,
			sourcetest.WithAuth("GoogleApplicationCredentials", saKey("cluster-project")), withAuthOrigin(sources.OriginCluster)),
	}
	for name, cfg := range refused {
		_, err := r.New(t.Context(), cfg)
		if !sources.IsConfigError(err) || !strings.Contains(err.Error(), "metadata.monitoringEndpoint") ||
			!strings.Contains(err.Error(), "--allow-ambient-credentials-on-custom-endpoints") {
			t.Errorf("%s: New = %v, want a refusal of metadata.monitoringEndpoint naming the flag", name, err)
		}
	}
	src, err := r.New(t.Context(), trigger(endpoint))
	if err != nil {
		t.Fatalf("the namespace's own key on an allowed endpoint: %v", err)
	}
	_ = src.Close()
}

// Values from a `<key>FromEnv` variable (possibly a Secret) or a TriggerAuthentication are never quoted in a parse
// error.
func TestParseErrorsHideValues(t *testing.T) {
	t.Setenv("GOOGLE_CLOUD_PROJECT", "")
	const secret = "SECRETVALUE42"
	fromEnv := func(key, value string) []sourcetest.Option {
		return []sourcetest.Option{sourcetest.WithMetadata(key+"FromEnv", "V"), sourcetest.WithEnv("V", value)}
	}
	with := func(opts ...[]sourcetest.Option) sources.Config {
		var all []sourcetest.Option
		for _, o := range opts {
			all = append(all, o...)
		}
		cfg := trigger(all...)
		cfg.Env["GCP_CREDS"] = saKey("key-project")
		return cfg
	}
	cases := map[string]struct {
		cfg       sources.Config
		wantField string
	}{
		"subscriptionName": {
			cfg:       with([]sourcetest.Option{sourcetest.WithoutMetadata("subscriptionName")}, fromEnv("subscriptionName", "1"+secret)),
			wantField: "metadata.subscriptionNameFromEnv",
		},
		"subscriptionName with a bad project": {
			cfg:       with([]sourcetest.Option{sourcetest.WithoutMetadata("subscriptionName")}, fromEnv("subscriptionName", "projects/"+secret+"/subscriptions/abc")),
			wantField: "metadata.subscriptionNameFromEnv",
		},
		"mode":        {cfg: with(fromEnv("mode", secret+"-x")), wantField: "metadata.modeFromEnv"},
		"value":       {cfg: with(fromEnv("value", secret)), wantField: "metadata.valueFromEnv"},
		"value <= 0":  {cfg: with(fromEnv("value", "-4242")), wantField: "metadata.valueFromEnv"},
		"aggregation": {cfg: with(fromEnv("aggregation", secret)), wantField: "metadata.aggregationFromEnv"},
		"timeHorizon": {cfg: with(fromEnv("timeHorizon", secret)), wantField: "metadata.timeHorizonFromEnv"},
		"monitoringEndpoint": {
			cfg: with(fromEnv("monitoringEndpoint", secret)), wantField: "metadata.monitoringEndpointFromEnv",
		},
		"projectID": {cfg: with(fromEnv("projectID", secret)), wantField: "metadata.projectIDFromEnv"},
		"project_id of a key": {
			cfg:       trigger(noCredentials, sourcetest.WithAuth("GoogleApplicationCredentials", saKey(secret))),
			wantField: sources.AuthField,
		},
		"a subscription without project, from a TriggerAuthentication": {
			cfg: trigger(noCredentials, sourcetest.WithoutMetadata("subscriptionName"), sourcetest.WithAuth("subscriptionName", "s"+secret),
				sourcetest.WithPodIdentity("gcp")),
			wantField: sources.AuthField,
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
