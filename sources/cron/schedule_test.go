package cron

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// at parses an RFC 3339 instant.
func at(t *testing.T, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("parsing %q: %v", s, err)
	}
	return ts
}

func TestWindow(t *testing.T) {
	type window struct {
		Active             bool
		NextStart, NextEnd time.Time
	}
	type tcase struct {
		tz, start, end string
		now            string
		want           bool
		nextStart      string
		nextEnd        string
	}
	const (
		weekdayStart = "0 9 * * 1-5"
		weekdayEnd   = "0 17 * * 1-5"
		nightStart   = "0 22 * * *"
		nightEnd     = "0 2 * * *"
	)
	cases := map[string]tcase{
		// 2026-03-04 is a Wednesday.
		"inside a weekday window": {
			tz: "Etc/UTC", start: weekdayStart, end: weekdayEnd, now: "2026-03-04T12:00:00Z", want: true,
			nextStart: "2026-03-05T09:00:00Z", nextEnd: "2026-03-04T17:00:00Z",
		},
		"before a weekday window": {
			tz: "Etc/UTC", start: weekdayStart, end: weekdayEnd, now: "2026-03-04T08:59:59Z", want: false,
			nextStart: "2026-03-04T09:00:00Z", nextEnd: "2026-03-04T17:00:00Z",
		},
		"exactly at start is active": {
			tz: "Etc/UTC", start: weekdayStart, end: weekdayEnd, now: "2026-03-04T09:00:00Z", want: true,
			nextStart: "2026-03-05T09:00:00Z", nextEnd: "2026-03-04T17:00:00Z",
		},
		"exactly at end is inactive": {
			tz: "Etc/UTC", start: weekdayStart, end: weekdayEnd, now: "2026-03-04T17:00:00Z", want: false,
			nextStart: "2026-03-05T09:00:00Z", nextEnd: "2026-03-05T17:00:00Z",
		},
		"weekend is outside": {
			tz: "Etc/UTC", start: weekdayStart, end: weekdayEnd, now: "2026-03-07T12:00:00Z", want: false,
			nextStart: "2026-03-09T09:00:00Z", nextEnd: "2026-03-09T17:00:00Z",
		},
		"time zone shifts the window": {
			// 12:00 UTC is 07:00 in New York (EST): before a 09:00-17:00 window there.
			tz: "America/New_York", start: weekdayStart, end: weekdayEnd, now: "2026-03-04T12:00:00Z", want: false,
			nextStart: "2026-03-04T09:00:00-05:00", nextEnd: "2026-03-04T17:00:00-05:00",
		},
		"across midnight at 23:30": {
			tz: "Etc/UTC", start: nightStart, end: nightEnd, now: "2026-03-04T23:30:00Z", want: true,
			nextStart: "2026-03-05T22:00:00Z", nextEnd: "2026-03-05T02:00:00Z",
		},
		"across midnight at 01:30": {
			tz: "Etc/UTC", start: nightStart, end: nightEnd, now: "2026-03-05T01:30:00Z", want: true,
			nextStart: "2026-03-05T22:00:00Z", nextEnd: "2026-03-05T02:00:00Z",
		},
		"across midnight at 03:00": {
			tz: "Etc/UTC", start: nightStart, end: nightEnd, now: "2026-03-05T03:00:00Z", want: false,
			nextStart: "2026-03-05T22:00:00Z", nextEnd: "2026-03-06T02:00:00Z",
		},
		"across midnight at 21:59": {
			tz: "Etc/UTC", start: nightStart, end: nightEnd, now: "2026-03-05T21:59:00Z", want: false,
			nextStart: "2026-03-05T22:00:00Z", nextEnd: "2026-03-06T02:00:00Z",
		},
		// Berlin springs forward on 2026-03-29: 02:00 CET becomes 03:00 CEST.
		"Berlin spring forward before the gap": {
			tz: "Europe/Berlin", start: "0 1 * * *", end: "0 4 * * *", now: "2026-03-29T00:30:00Z", want: true,
			nextStart: "2026-03-30T01:00:00+02:00", nextEnd: "2026-03-29T04:00:00+02:00",
		},
		"Berlin spring forward after the gap": {
			tz: "Europe/Berlin", start: "0 1 * * *", end: "0 4 * * *", now: "2026-03-29T01:30:00Z", want: true,
			nextStart: "2026-03-30T01:00:00+02:00", nextEnd: "2026-03-29T04:00:00+02:00",
		},
		"Berlin spring forward window ends at 04:00 CEST": {
			tz: "Europe/Berlin", start: "0 1 * * *", end: "0 4 * * *", now: "2026-03-29T02:00:00Z", want: false,
			nextStart: "2026-03-30T01:00:00+02:00", nextEnd: "2026-03-30T04:00:00+02:00",
		},
		// KEDA-compatible quirk: 02:30 does not exist on 2026-03-29 in Berlin, so start is skipped that day and the
		// next boundary after 03-28 03:30 CET is the end at 03-29 03:30 CEST: the window counts as open for a day.
		"Berlin start in the spring-forward gap is skipped": {
			tz: "Europe/Berlin", start: "30 2 * * *", end: "30 3 * * *", now: "2026-03-28T03:00:00Z", want: true,
			nextStart: "2026-03-30T02:30:00+02:00", nextEnd: "2026-03-29T03:30:00+02:00",
		},
		"Berlin start in the gap, after the end": {
			tz: "Europe/Berlin", start: "30 2 * * *", end: "30 3 * * *", now: "2026-03-29T01:45:00Z", want: false,
			nextStart: "2026-03-30T02:30:00+02:00", nextEnd: "2026-03-30T03:30:00+02:00",
		},
		// New York falls back on 2026-11-01: 02:00 EDT becomes 01:00 EST, so 01:00-01:59 happens twice.
		"New York fall back first 01:15 (EDT)": {
			tz: "America/New_York", start: "0 1 * * *", end: "30 1 * * *", now: "2026-11-01T05:15:00Z", want: true,
			nextStart: "2026-11-01T01:00:00-05:00", nextEnd: "2026-11-01T01:30:00-04:00",
		},
		"New York fall back first 01:45 (EDT)": {
			tz: "America/New_York", start: "0 1 * * *", end: "30 1 * * *", now: "2026-11-01T05:45:00Z", want: false,
			nextStart: "2026-11-01T01:00:00-05:00", nextEnd: "2026-11-01T01:30:00-05:00",
		},
		"New York fall back second 01:15 (EST) reopens": {
			tz: "America/New_York", start: "0 1 * * *", end: "30 1 * * *", now: "2026-11-01T06:15:00Z", want: true,
			nextStart: "2026-11-02T01:00:00-05:00", nextEnd: "2026-11-01T01:30:00-05:00",
		},
		"New York fall back second 01:45 (EST)": {
			tz: "America/New_York", start: "0 1 * * *", end: "30 1 * * *", now: "2026-11-01T06:45:00Z", want: false,
			nextStart: "2026-11-02T01:00:00-05:00", nextEnd: "2026-11-02T01:30:00-05:00",
		},
		"New York window spanning the repeated hour": {
			tz: "America/New_York", start: "0 0 * * *", end: "0 3 * * *", now: "2026-11-01T07:30:00Z", want: true,
			nextStart: "2026-11-02T00:00:00-05:00", nextEnd: "2026-11-01T03:00:00-05:00",
		},
		"New York window spanning the repeated hour ends at 03:00 EST": {
			tz: "America/New_York", start: "0 0 * * *", end: "0 3 * * *", now: "2026-11-01T08:00:00Z", want: false,
			nextStart: "2026-11-02T00:00:00-05:00", nextEnd: "2026-11-02T03:00:00-05:00",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := ParseSchedule(tc.tz, tc.start, tc.end)
			if err != nil {
				t.Fatalf("ParseSchedule: %v", err)
			}
			active, nextStart, nextEnd := Window(s, at(t, tc.now))
			want := window{Active: tc.want, NextStart: at(t, tc.nextStart), NextEnd: at(t, tc.nextEnd)}
			got := window{Active: active, NextStart: nextStart, NextEnd: nextEnd}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Window(%s) mismatch (-want +got):\n%s", tc.now, diff)
			}
			if nextStart.Location() != s.Location() || nextEnd.Location() != s.Location() {
				t.Errorf("next firings in %v and %v, want %v", nextStart.Location(), nextEnd.Location(), s.Location())
			}
		})
	}
}

func TestWindowIgnoresTheCallersZone(t *testing.T) {
	s, err := ParseSchedule("Europe/Berlin", "0 9 * * *", "0 17 * * *")
	if err != nil {
		t.Fatalf("ParseSchedule: %v", err)
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatalf("LoadLocation: %v", err)
	}
	utc := at(t, "2026-06-10T10:00:00Z") // 12:00 in Berlin
	cases := map[string]time.Time{
		"UTC":      utc,
		"New York": utc.In(ny),
	}
	for name, now := range cases {
		t.Run(name, func(t *testing.T) {
			if active, _, _ := Window(s, now); !active {
				t.Errorf("Window(%s) inactive, want active (12:00 in Berlin)", now)
			}
		})
	}
}

func TestMetricName(t *testing.T) {
	cases := map[string]struct {
		index          int
		tz, start, end string
		want           string
	}{
		"weekday names": {
			index: 0, tz: "Etc/UTC", start: "0 0 * * Thu", end: "59 23 * * Thu",
			want: "s0-cron-Etc-UTC-00xxThu-5923xxThu",
		},
		"steps and ranges": {
			index: 1, tz: "Etc/UTC", start: "0 */2 * * *", end: "0 1-23/2 * * *",
			want: "s1-cron-Etc-UTC-0xSl2xxx-01-23Sl2xxx",
		},
		"lists": {
			index: 2, tz: "Etc/UTC", start: "0,30 * * * *", end: "15,45 * * * *",
			want: "s2-cron-Etc-UTC-0Cm30xxxx-15Cm45xxxx",
		},
		"question mark and a nested zone": {
			index: 3, tz: "America/Argentina/Buenos_Aires", start: "0 8 ? * *", end: "0 18 ? * *",
			want: "s3-cron-America-Argentina-Buenos_Aires-08Qmxx-018Qmxx",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, MetricName(tc.index, tc.tz, tc.start, tc.end)); diff != "" {
				t.Errorf("MetricName mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
