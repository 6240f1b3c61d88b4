package cron

import (
	"strings"
	"testing"

	"github.com/kubedispatch/kubedispatch/internal/sourcetest"
	"github.com/kubedispatch/kubedispatch/sources"
)

// Values from a `<key>FromEnv` variable (possibly a Secret) or a TriggerAuthentication are never quoted in a parse
// error; literal metadata still is.
func TestParseErrorsHideValues(t *testing.T) {
	const secret = "SECRETVALUE42"
	fromEnv := func(key, value string) sources.Config {
		return trigger(sourcetest.WithoutMetadata(key), sourcetest.WithMetadata(key+"FromEnv", "V"), sourcetest.WithEnv("V", value))
	}
	cases := map[string]struct {
		cfg       sources.Config
		wantField string
		wantShown bool
	}{
		"timezone from env":        {cfg: fromEnv("timezone", secret), wantField: "metadata.timezoneFromEnv"},
		"start from env":           {cfg: fromEnv("start", secret), wantField: "metadata.startFromEnv"},
		"end from env":             {cfg: fromEnv("end", secret+" * * * *"), wantField: "metadata.endFromEnv"},
		"desiredReplicas from env": {cfg: fromEnv("desiredReplicas", secret), wantField: "metadata.desiredReplicasFromEnv"},
		"desiredReplicas out of range from a TriggerAuthentication": {
			cfg:       trigger(sourcetest.WithoutMetadata("desiredReplicas"), sourcetest.WithAuth("desiredReplicas", "4242424242")),
			wantField: sources.AuthField,
		},
		"literal timezone is quoted": {
			cfg: trigger(sourcetest.WithMetadata("timezone", secret)), wantField: "metadata.timezone", wantShown: true,
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
			shown := strings.Contains(ce.Error(), secret) || strings.Contains(ce.Error(), "4242424242")
			if shown != tc.wantShown {
				t.Errorf("error %q shows the value: %v, want %v", ce.Error(), shown, tc.wantShown)
			}
		})
	}
}
