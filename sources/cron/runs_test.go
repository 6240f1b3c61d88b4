package cron

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubedispatch/kubedispatch/internal/sourcetest"
	"github.com/kubedispatch/kubedispatch/sources"
)

func TestParseRunsPerWindow(t *testing.T) {
	cases := map[string]struct {
		cfg          sources.Config
		wantErr      string // substring; empty: no error
		wantRuns     int64
		wantDeadline time.Duration
	}{
		"runs without desiredReplicas": {
			cfg: sourcetest.Config(Type, sourcetest.WithMetadata("timezone", "Etc/UTC"), sourcetest.WithMetadata("start", "0 2 * * *"),
				sourcetest.WithMetadata("end", "0 4 * * *"), sourcetest.WithMetadata("runsPerWindow", "3")),
			wantRuns: 3,
		},
		"runs with desiredReplicas kept from a KEDA manifest": {
			cfg: trigger(sourcetest.WithMetadata("runsPerWindow", "2")), wantRuns: 2,
		},
		"with a deadline": {
			cfg:      trigger(sourcetest.WithMetadata("runsPerWindow", "2"), sourcetest.WithMetadata("startingDeadlineSeconds", "30")),
			wantRuns: 2, wantDeadline: 30 * time.Second,
		},
		"zero runs": {
			cfg: trigger(sourcetest.WithMetadata("runsPerWindow", "0")), wantErr: "metadata.runsPerWindow: must be from 1 to 1000000",
		},
		"not a number": {
			cfg: trigger(sourcetest.WithMetadata("runsPerWindow", "three")), wantErr: "metadata.runsPerWindow",
		},
		"a deadline without runs": {
			cfg: trigger(sourcetest.WithMetadata("startingDeadlineSeconds", "30")), wantErr: "metadata.startingDeadlineSeconds: applies only with metadata.runsPerWindow",
		},
		"a negative deadline": {
			cfg:     trigger(sourcetest.WithMetadata("runsPerWindow", "2"), sourcetest.WithMetadata("startingDeadlineSeconds", "-1")),
			wantErr: "metadata.startingDeadlineSeconds: must be from 1 to",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			m, err := Parse(tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !sources.IsConfigError(err) {
					t.Fatalf("Parse() error = %v, want a config error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			if m.RunsPerWindow != tc.wantRuns || m.StartingDeadline != tc.wantDeadline {
				t.Errorf("Parse() runs %d deadline %s, want %d, %s", m.RunsPerWindow, m.StartingDeadline, tc.wantRuns, tc.wantDeadline)
			}
		})
	}
}

func TestBacklogRunsPerWindow(t *testing.T) {
	day := func(h, m int) time.Time { return time.Date(2026, 12, 3, h, m, 0, 0, time.UTC) }
	src, err := New(context.Background(), trigger(sourcetest.WithMetadata("runsPerWindow", "4"), sourcetest.WithMetadata("startingDeadlineSeconds", "600")))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		now  time.Time
		want sources.Backlog
	}{
		"open: the occurrence of today": {
			now: day(10, 0),
			want: sources.Backlog{Value: 4, Target: 1, Active: true, SampledAt: day(10, 0),
				Occurrence: &sources.Occurrence{Start: day(9, 0), End: day(17, 0), Open: true, Runs: 4, StartingDeadline: 10 * time.Minute}},
		},
		"closed: today's occurrence, inactive": {
			now: day(18, 0),
			want: sources.Backlog{Target: 1, SampledAt: day(18, 0),
				Occurrence: &sources.Occurrence{Start: day(9, 0), End: day(17, 0), Runs: 4, StartingDeadline: 10 * time.Minute}},
		},
		"before today's: yesterday's occurrence": {
			now: day(8, 0),
			want: sources.Backlog{Target: 1, SampledAt: day(8, 0),
				Occurrence: &sources.Occurrence{Start: day(9, 0).AddDate(0, 0, -1), End: day(17, 0).AddDate(0, 0, -1), Runs: 4, StartingDeadline: 10 * time.Minute}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := src.Backlog(context.Background(), tc.now)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Backlog() (-want +got):\n%s", diff)
			}
		})
	}
}
