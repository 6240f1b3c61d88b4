package sources

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A value that does not come from literal trigger metadata (a `<key>FromEnv` variable, which may be a Secret through
// secretKeyRef, or a TriggerAuthentication parameter) never appears in a parse error, which goes to status, events
// and the log. A literal value is quoted, as it is in the spec anyway.
func TestParseErrorsNeverQuoteHiddenValues(t *testing.T) {
	const secret = "s3cr3t-N0T-a-number"
	getters := map[string]func(Params) error{
		"Int64":         func(p Params) error { _, err := p.Int64("k", 1); return err },
		"RequiredInt64": func(p Params) error { _, err := p.RequiredInt64("k"); return err },
		"Float":         func(p Params) error { _, err := p.Float("k", 1); return err },
		"Bool":          func(p Params) error { _, err := p.Bool("k", false); return err },
	}
	origins := map[string]struct {
		cfg       Config
		wantField string
		wantShown bool
	}{
		"env variable (a secretKeyRef)": {
			cfg:       paramsConfig(map[string]string{"kFromEnv": "SECRET"}, map[string]string{"SECRET": secret}, nil),
			wantField: "metadata.kFromEnv",
		},
		"TriggerAuthentication parameter": {
			cfg:       paramsConfig(nil, nil, map[string]string{"k": secret}),
			wantField: AuthField,
		},
		"literal metadata": {
			cfg:       paramsConfig(map[string]string{"k": secret}, nil, nil),
			wantField: "metadata.k",
			wantShown: true,
		},
	}
	for gname, get := range getters {
		for oname, o := range origins {
			t.Run(gname+" from "+oname, func(t *testing.T) {
				err := get(o.cfg.Params())
				ce, ok := err.(*ConfigError)
				if !ok {
					t.Fatalf("error = %v, want a *ConfigError", err)
				}
				if diff := cmp.Diff(o.wantField, ce.Field); diff != "" {
					t.Errorf("field (-want +got):\n%s", diff)
				}
				if shown := strings.Contains(ce.Error(), secret); shown != o.wantShown {
					t.Errorf("error %q shows the value: %v, want %v", ce.Error(), shown, o.wantShown)
				}
			})
		}
	}
}

func TestQuoteValue(t *testing.T) {
	cases := map[string]struct {
		field string
		want  string
	}{
		"literal":  {field: "metadata.queueURL", want: `"v"`},
		"from env": {field: "metadata.queueURLFromEnv", want: HiddenValue},
		"auth":     {field: AuthField, want: HiddenValue},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, QuoteValue("queueURL", tc.field, "v")); diff != "" {
				t.Errorf("QuoteValue (-want +got):\n%s", diff)
			}
		})
	}
	if got := QuoteNumber("queueLength", "metadata.queueLength", int64(1000000)); got != "1000000" {
		t.Errorf("QuoteNumber(int64) = %s, want 1000000", got)
	}
	if got := QuoteNumber("value", "metadata.value", -0.5); got != "-0.5" {
		t.Errorf("QuoteNumber(float64) = %s, want -0.5", got)
	}
	if got := QuoteNumber("value", AuthField, -0.5); got != HiddenValue {
		t.Errorf("QuoteNumber from auth = %s, want HiddenValue", got)
	}
}
