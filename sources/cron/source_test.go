package cron

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kubedispatch/kubedispatch/internal/sourcetest"
	"github.com/kubedispatch/kubedispatch/sources"
)

// trigger builds a valid cron trigger config (Etc/UTC, 09:00-17:00 every day, 3 replicas) changed by the options.
func trigger(opts ...sourcetest.Option) sources.Config {
	defaults := []sourcetest.Option{
		sourcetest.WithMetadata("timezone", "Etc/UTC"),
		sourcetest.WithMetadata("start", "0 9 * * *"),
		sourcetest.WithMetadata("end", "0 17 * * *"),
		sourcetest.WithMetadata("desiredReplicas", "3"),
	}
	return sourcetest.Config(Type, append(defaults, opts...)...)
}

func TestParse(t *testing.T) {
	const required5 = "is required (a 5-field cron expression: minute hour day-of-month month day-of-week)"
	cases := map[string]struct {
		cfg       sources.Config
		wantField string // empty: no error
		wantMsg   string
	}{
		"valid": {
			cfg: trigger(),
		},
		"empty metadata": {
			cfg:       sources.Config{Type: Type, Metadata: map[string]string{}},
			wantField: "metadata.timezone",
			wantMsg:   "metadata.timezone: is required (an IANA time zone such as Europe/Berlin)",
		},
		"missing desiredReplicas": {
			cfg:       trigger(sourcetest.WithoutMetadata("desiredReplicas")),
			wantField: "metadata.desiredReplicas",
			wantMsg: "metadata.desiredReplicas: is required (set desiredReplicas, desiredReplicasFromEnv or " +
				"the authenticationRef parameter desiredReplicas)",
		},
		"missing timezone": {
			cfg:       trigger(sourcetest.WithoutMetadata("timezone")),
			wantField: "metadata.timezone",
			wantMsg:   "metadata.timezone: is required (an IANA time zone such as Europe/Berlin)",
		},
		"minute range": {
			cfg: trigger(sourcetest.WithMetadata("start", "30-33 * * * *"),
				sourcetest.WithMetadata("end", "40 * * * *")),
		},
		"range without a start": {
			cfg:       trigger(sourcetest.WithMetadata("start", "-30 * * * *")),
			wantField: "metadata.start",
			wantMsg: `metadata.start: "-30 * * * *" is not a 5-field cron expression (minute hour day-of-month ` +
				`month day-of-week): failed to parse int from : strconv.Atoi: parsing "": invalid syntax`,
		},
		"month range without a start": {
			cfg:       trigger(sourcetest.WithMetadata("end", "50 * * -3 *")),
			wantField: "metadata.end",
			wantMsg: `metadata.end: "50 * * -3 *" is not a 5-field cron expression (minute hour day-of-month ` +
				`month day-of-week): failed to parse int from : strconv.Atoi: parsing "": invalid syntax`,
		},
		"start equals end": {
			cfg:       trigger(sourcetest.WithMetadata("end", "0 9 * * *")),
			wantField: "metadata.end",
			wantMsg:   `metadata.end: must differ from start (both are "0 9 * * *")`,
		},
		"start equals end up to spacing": {
			cfg:       trigger(sourcetest.WithMetadata("end", " 0  9 * * * ")),
			wantField: "metadata.end",
			wantMsg:   `metadata.end: must differ from start (both are "0 9 * * *")`,
		},
		"missing start": {
			cfg:       trigger(sourcetest.WithoutMetadata("start")),
			wantField: "metadata.start",
			wantMsg:   "metadata.start: " + required5,
		},
		"missing end": {
			cfg:       trigger(sourcetest.WithoutMetadata("end")),
			wantField: "metadata.end",
			wantMsg:   "metadata.end: " + required5,
		},
		"unknown time zone": {
			cfg:       trigger(sourcetest.WithMetadata("timezone", "Mars/Olympus_Mons")),
			wantField: "metadata.timezone",
			wantMsg:   `metadata.timezone: "Mars/Olympus_Mons" is not an IANA time zone`,
		},
		"Local time zone": {
			cfg:       trigger(sourcetest.WithMetadata("timezone", "Local")),
			wantField: "metadata.timezone",
			wantMsg:   `metadata.timezone: "Local" is not allowed; name an IANA time zone such as Etc/UTC`,
		},
		"seconds field": {
			cfg:       trigger(sourcetest.WithMetadata("start", "0 0 9 * * *")),
			wantField: "metadata.start",
			wantMsg: `metadata.start: "0 0 9 * * *" is not a 5-field cron expression (minute hour day-of-month ` +
				`month day-of-week): expected exactly 5 fields, found 6: [0 0 9 * * *]`,
		},
		"descriptor": {
			cfg:       trigger(sourcetest.WithMetadata("start", "@hourly")),
			wantField: "metadata.start",
			wantMsg: `metadata.start: "@hourly" is not a 5-field cron expression (minute hour day-of-month ` +
				`month day-of-week): parser does not accept descriptors: @hourly`,
		},
		"time zone prefix": {
			cfg:       trigger(sourcetest.WithMetadata("start", "CRON_TZ=Asia/Tokyo 0 9 * * *")),
			wantField: "metadata.start",
			wantMsg:   `metadata.start: "CRON_TZ=Asia/Tokyo 0 9 * * *": time zone prefixes are not allowed, set metadata.timezone`,
		},
		"never fires": {
			cfg:       trigger(sourcetest.WithMetadata("end", "0 0 30 2 *")),
			wantField: "metadata.end",
			wantMsg:   `metadata.end: "0 0 30 2 *" never fires`,
		},
		"leap day fires": {
			cfg: trigger(sourcetest.WithMetadata("end", "0 0 29 2 *")),
		},
		"zero desiredReplicas": {
			cfg:       trigger(sourcetest.WithMetadata("desiredReplicas", "0")),
			wantField: "metadata.desiredReplicas",
			wantMsg:   "metadata.desiredReplicas: must be from 1 to 1000000, got 0",
		},
		"negative desiredReplicas": {
			cfg:       trigger(sourcetest.WithMetadata("desiredReplicas", "-2")),
			wantField: "metadata.desiredReplicas",
			wantMsg:   "metadata.desiredReplicas: must be from 1 to 1000000, got -2",
		},
		"desiredReplicas above the maximum": {
			cfg:       trigger(sourcetest.WithMetadata("desiredReplicas", "2147483647")),
			wantField: "metadata.desiredReplicas",
			wantMsg:   "metadata.desiredReplicas: must be from 1 to 1000000, got 2147483647",
		},
		"non-integer desiredReplicas": {
			cfg:       trigger(sourcetest.WithMetadata("desiredReplicas", "three")),
			wantField: "metadata.desiredReplicas",
			wantMsg:   `metadata.desiredReplicas: "three" is not an integer`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			m, err := Parse(tc.cfg)
			if tc.wantField == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if m.Schedule.Location() == nil {
					t.Errorf("Parse returned no schedule")
				}
				return
			}
			var ce *sources.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Parse error = %v, want a *sources.ConfigError", err)
			}
			if ce.Field != tc.wantField {
				t.Errorf("Field = %q, want %q", ce.Field, tc.wantField)
			}
			if diff := cmp.Diff(tc.wantMsg, err.Error()); diff != "" {
				t.Errorf("message mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBacklog(t *testing.T) {
	cases := map[string]struct {
		cfg  sources.Config
		now  string
		want sources.Backlog
	}{
		"open window wants desiredReplicas": {
			cfg:  trigger(),
			now:  "2026-03-04T12:00:00Z",
			want: sources.Backlog{Value: 3, Target: 1, Active: true},
		},
		"closed window wants nothing": {
			cfg:  trigger(),
			now:  "2026-03-04T18:00:00Z",
			want: sources.Backlog{Value: 0, Target: 1, Active: false},
		},
		"window across midnight in Berlin": {
			cfg: trigger(sourcetest.WithMetadata("timezone", "Europe/Berlin"),
				sourcetest.WithMetadata("start", "0 22 * * *"), sourcetest.WithMetadata("end", "0 2 * * *"),
				sourcetest.WithMetadata("desiredReplicas", "10")),
			now:  "2026-07-01T22:30:00Z", // 00:30 CEST
			want: sources.Backlog{Value: 10, Target: 1, Active: true},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			src, err := New(context.Background(), tc.cfg)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			now := at(t, tc.now)
			got, err := src.Backlog(context.Background(), now)
			if err != nil {
				t.Fatalf("Backlog: %v", err)
			}
			tc.want.SampledAt = now
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Backlog mismatch (-want +got):\n%s", diff)
			}
			for range 2 {
				if err := src.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}
		})
	}
}

func TestRegister(t *testing.T) {
	r := sourcetest.AssertRegister(t, Register, trigger(sourcetest.WithoutMetadata("timezone")))
	src, err := r.New(context.Background(), trigger())
	if err != nil {
		t.Fatalf("registry New: %v", err)
	}
	if _, ok := src.(*Source); !ok {
		t.Errorf("registry New = %T, want *Source", src)
	}
}
