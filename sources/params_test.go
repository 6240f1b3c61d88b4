package sources

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// paramsConfig builds a Config whose parameters come from the given maps.
func paramsConfig(metadata, env, auth map[string]string) Config {
	return Config{Type: "test", Metadata: metadata, Env: env, AuthParams: auth}
}

func TestParamsLookup(t *testing.T) {
	type result struct {
		Value string
		Field string
		OK    bool
	}
	cases := map[string]struct {
		cfg     Config
		key     string
		want    result
		wantErr *ConfigError
	}{
		"metadata": {
			cfg:  paramsConfig(map[string]string{"queueURL": "q"}, nil, nil),
			key:  "queueURL",
			want: result{Value: "q", Field: "metadata.queueURL", OK: true},
		},
		"metadata wins over env and auth": {
			cfg: paramsConfig(map[string]string{"queueURL": "q", "queueURLFromEnv": "QUEUE"},
				map[string]string{"QUEUE": "from-env"}, map[string]string{"queueURL": "from-auth"}),
			key:  "queueURL",
			want: result{Value: "q", Field: "metadata.queueURL", OK: true},
		},
		"from env": {
			cfg: paramsConfig(map[string]string{"queueURLFromEnv": "QUEUE"},
				map[string]string{"QUEUE": "from-env"}, map[string]string{"queueURL": "from-auth"}),
			key:  "queueURL",
			want: result{Value: "from-env", Field: "metadata.queueURLFromEnv", OK: true},
		},
		"env variable missing": {
			cfg: paramsConfig(map[string]string{"queueURLFromEnv": "QUEUE"}, map[string]string{"OTHER": "x"},
				map[string]string{"queueURL": "from-auth"}),
			key:     "queueURL",
			want:    result{Field: "metadata.queueURLFromEnv"},
			wantErr: &ConfigError{Field: "metadata.queueURLFromEnv", Detail: `environment variable "QUEUE" is not set in the envSourceContainerName container`},
		},
		"empty env variable falls through to auth": {
			cfg: paramsConfig(map[string]string{"awsRegionFromEnv": "REGION"}, map[string]string{"REGION": ""},
				map[string]string{"awsRegion": "eu-west-1"}),
			key:  "awsRegion",
			want: result{Value: "eu-west-1", Field: "authenticationRef", OK: true},
		},
		"auth params": {
			cfg:  paramsConfig(nil, nil, map[string]string{"awsRegion": "eu-west-1"}),
			key:  "awsRegion",
			want: result{Value: "eu-west-1", Field: "authenticationRef", OK: true},
		},
		"empty metadata counts as unset": {
			cfg:  paramsConfig(map[string]string{"awsRegion": ""}, nil, nil),
			key:  "awsRegion",
			want: result{Field: "metadata.awsRegion"},
		},
		"nil maps": {
			cfg:  Config{},
			key:  "x",
			want: result{Field: "metadata.x"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			v, field, ok, err := tc.cfg.Params().Lookup(tc.key)
			if diff := cmp.Diff(tc.want, result{Value: v, Field: field, OK: ok}); diff != "" {
				t.Errorf("Lookup(%q) mismatch (-want +got):\n%s", tc.key, diff)
			}
			checkConfigError(t, err, tc.wantErr)
		})
	}
}

func TestParamsTyped(t *testing.T) {
	env := map[string]string{"LEN": "7", "BAD": "seven"}
	cases := map[string]struct {
		cfg     Config
		get     func(Params) (any, error)
		want    any
		wantErr *ConfigError
	}{
		"string required present": {
			cfg:  paramsConfig(map[string]string{"k": "v"}, nil, nil),
			get:  func(p Params) (any, error) { return p.String("k", true) },
			want: "v",
		},
		"string required missing": {
			cfg:  paramsConfig(nil, nil, nil),
			get:  func(p Params) (any, error) { return p.String("k", true) },
			want: "",
			wantErr: &ConfigError{Field: "metadata.k",
				Detail: "is required (set k, kFromEnv or the authenticationRef parameter k)"},
		},
		"string optional missing": {
			cfg:  paramsConfig(nil, nil, nil),
			get:  func(p Params) (any, error) { return p.String("k", false) },
			want: "",
		},
		"int64 default": {
			cfg:  paramsConfig(nil, nil, nil),
			get:  func(p Params) (any, error) { return p.Int64("queueLength", 5) },
			want: int64(5),
		},
		"int64 metadata": {
			cfg:  paramsConfig(map[string]string{"queueLength": "2147483648"}, nil, nil),
			get:  func(p Params) (any, error) { return p.Int64("queueLength", 5) },
			want: int64(2147483648),
		},
		"int64 from env": {
			cfg:  paramsConfig(map[string]string{"queueLengthFromEnv": "LEN"}, env, nil),
			get:  func(p Params) (any, error) { return p.Int64("queueLength", 5) },
			want: int64(7),
		},
		"int64 not an integer": {
			cfg:     paramsConfig(map[string]string{"queueLength": "1.5"}, nil, nil),
			get:     func(p Params) (any, error) { return p.Int64("queueLength", 5) },
			want:    int64(0),
			wantErr: &ConfigError{Field: "metadata.queueLength", Detail: `"1.5" is not an integer`},
		},
		"int64 bad env value names the FromEnv field": {
			cfg:     paramsConfig(map[string]string{"queueLengthFromEnv": "BAD"}, env, nil),
			get:     func(p Params) (any, error) { return p.Int64("queueLength", 5) },
			want:    int64(0),
			wantErr: &ConfigError{Field: "metadata.queueLengthFromEnv", Detail: HiddenValue + " is not an integer"},
		},
		"int64 bad auth value names the parameter": {
			cfg:     paramsConfig(nil, nil, map[string]string{"queueLength": "x"}),
			get:     func(p Params) (any, error) { return p.Int64("queueLength", 5) },
			want:    int64(0),
			wantErr: &ConfigError{Field: "authenticationRef", Detail: "parameter queueLength: " + HiddenValue + " is not an integer"},
		},
		"int64 missing env variable": {
			cfg:  paramsConfig(map[string]string{"queueLengthFromEnv": "NOPE"}, env, nil),
			get:  func(p Params) (any, error) { return p.Int64("queueLength", 5) },
			want: int64(5),
			wantErr: &ConfigError{Field: "metadata.queueLengthFromEnv",
				Detail: `environment variable "NOPE" is not set in the envSourceContainerName container`},
		},
		"required int64 present": {
			cfg:  paramsConfig(map[string]string{"desiredReplicas": "-3"}, nil, nil),
			get:  func(p Params) (any, error) { return p.RequiredInt64("desiredReplicas") },
			want: int64(-3),
		},
		"required int64 missing": {
			cfg:  paramsConfig(nil, nil, nil),
			get:  func(p Params) (any, error) { return p.RequiredInt64("desiredReplicas") },
			want: int64(0),
			wantErr: &ConfigError{Field: "metadata.desiredReplicas",
				Detail: "is required (set desiredReplicas, desiredReplicasFromEnv or the authenticationRef parameter desiredReplicas)"},
		},
		"float": {
			cfg:  paramsConfig(map[string]string{"value": "2.5"}, nil, nil),
			get:  func(p Params) (any, error) { return p.Float("value", 10) },
			want: 2.5,
		},
		"float default": {
			cfg:  paramsConfig(nil, nil, nil),
			get:  func(p Params) (any, error) { return p.Float("value", 10) },
			want: 10.0,
		},
		"float NaN rejected": {
			cfg:     paramsConfig(map[string]string{"value": "NaN"}, nil, nil),
			get:     func(p Params) (any, error) { return p.Float("value", 10) },
			want:    0.0,
			wantErr: &ConfigError{Field: "metadata.value", Detail: `"NaN" is not a number`},
		},
		"float garbage": {
			cfg:     paramsConfig(map[string]string{"value": "ten"}, nil, nil),
			get:     func(p Params) (any, error) { return p.Float("value", 10) },
			want:    0.0,
			wantErr: &ConfigError{Field: "metadata.value", Detail: `"ten" is not a number`},
		},
		"bool default": {
			cfg:  paramsConfig(nil, nil, nil),
			get:  func(p Params) (any, error) { return p.Bool("scaleOnInFlight", true) },
			want: true,
		},
		"bool false": {
			cfg:  paramsConfig(map[string]string{"scaleOnInFlight": "false"}, nil, nil),
			get:  func(p Params) (any, error) { return p.Bool("scaleOnInFlight", true) },
			want: false,
		},
		"bool garbage": {
			cfg:     paramsConfig(map[string]string{"scaleOnInFlight": "yes"}, nil, nil),
			get:     func(p Params) (any, error) { return p.Bool("scaleOnInFlight", true) },
			want:    false,
			wantErr: &ConfigError{Field: "metadata.scaleOnInFlight", Detail: `"yes" is not a boolean (use true or false)`},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := tc.get(tc.cfg.Params())
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("value mismatch (-want +got):\n%s", diff)
			}
			checkConfigError(t, err, tc.wantErr)
		})
	}
}

func TestParamsHasAndAuth(t *testing.T) {
	p := paramsConfig(map[string]string{"a": "1", "bFromEnv": "B", "awsAccessKeyID": "meta"}, nil,
		map[string]string{"c": "3", "awsAccessKeyID": "secret"}).Params()
	cases := map[string]struct {
		got, want any
	}{
		"has metadata":            {got: p.Has("a"), want: true},
		"has FromEnv reference":   {got: p.Has("b"), want: true},
		"has auth":                {got: p.Has("c"), want: true},
		"has nothing":             {got: p.Has("d"), want: false},
		"auth reads auth only":    {got: p.Auth("awsAccessKeyID"), want: "secret"},
		"auth ignores metadata":   {got: p.Auth("a"), want: ""},
		"metadata field spelling": {got: MetadataField("queueURL"), want: "metadata.queueURL"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// checkConfigError fails t unless err is a *ConfigError equal to want (or both are nil).
func checkConfigError(t *testing.T, err error, want *ConfigError) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Errorf("unexpected error: %v", err)
		}
		return
	}
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("error = %v, want *ConfigError %v", err, want)
	}
	if diff := cmp.Diff(want, ce); diff != "" {
		t.Errorf("ConfigError mismatch (-want +got):\n%s", diff)
	}
}
