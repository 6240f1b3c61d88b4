package cron

import (
	"fmt"
	"strings"
	"time"
	// The embedded time zone database keeps LoadLocation working in images without /usr/share/zoneinfo.
	_ "time/tzdata"

	robfig "github.com/robfig/cron/v3"

	"github.com/kubedispatch/kubedispatch/sources"
)

// parser accepts exactly the five standard fields (minute hour day-of-month month day-of-week): no seconds and no
// @descriptors.
func parser() robfig.Parser {
	return robfig.NewParser(robfig.Minute | robfig.Hour | robfig.Dom | robfig.Month | robfig.Dow)
}

// Schedule is a parsed cron window: a start and an end expression in one time zone. Build it with ParseSchedule.
type Schedule struct {
	loc   *time.Location
	start robfig.Schedule
	end   robfig.Schedule
}

// Location returns the schedule's time zone.
func (s Schedule) Location() *time.Location {
	return s.loc
}

// ParseSchedule parses an IANA time zone and the window's start and end cron expressions. Errors are
// *sources.ConfigError naming metadata.timezone, metadata.start or metadata.end.
func ParseSchedule(timezone, start, end string) (Schedule, error) {
	loc, err := loadLocation(timezone)
	if err != nil {
		return Schedule{}, err
	}
	startSched, err := parseSpec(keyStart, start, loc)
	if err != nil {
		return Schedule{}, err
	}
	endSched, err := parseSpec(keyEnd, end, loc)
	if err != nil {
		return Schedule{}, err
	}
	if strings.Join(strings.Fields(start), " ") == strings.Join(strings.Fields(end), " ") {
		return Schedule{}, sources.ConfigErrorf(sources.MetadataField(keyEnd), "must differ from start (both are %q)", start)
	}
	return Schedule{loc: loc, start: startSched, end: endSched}, nil
}

func loadLocation(timezone string) (*time.Location, error) {
	field := sources.MetadataField(keyTimezone)
	if timezone == "" {
		return nil, sources.ConfigErrorf(field, "is required (an IANA time zone such as Europe/Berlin)")
	}
	if timezone == "Local" {
		return nil, sources.ConfigErrorf(field, "%q is not allowed; name an IANA time zone such as Etc/UTC", timezone)
	}
	loc, err := time.LoadLocation(timezone)
	if err != nil {
		return nil, sources.ConfigErrorf(field, "%q is not an IANA time zone", timezone)
	}
	return loc, nil
}

func parseSpec(key, spec string, loc *time.Location) (robfig.Schedule, error) {
	field := sources.MetadataField(key)
	trimmed := strings.TrimSpace(spec)
	if trimmed == "" {
		return nil, sources.ConfigErrorf(field, "is required (a 5-field cron expression: minute hour day-of-month month day-of-week)")
	}
	if strings.HasPrefix(trimmed, "TZ=") || strings.HasPrefix(trimmed, "CRON_TZ=") {
		return nil, sources.ConfigErrorf(field, "%q: time zone prefixes are not allowed, set metadata.timezone", spec)
	}
	sched, err := parser().Parse(trimmed)
	if err != nil {
		return nil, sources.ConfigErrorf(field, "%q is not a 5-field cron expression (minute hour day-of-month month day-of-week): %v", spec, err)
	}
	// Cron expressions have no year, so one that does not fire within the parser's five-year horizon never fires.
	if sched.Next(time.Date(2000, time.January, 1, 0, 0, 0, 0, loc)).IsZero() {
		return nil, sources.ConfigErrorf(field, "%q never fires", spec)
	}
	return sched, nil
}

// Window evaluates the schedule at now. nextStart and nextEnd are the next firings of start and end strictly after
// now, computed on the wall clock of the schedule's time zone and returned in it. The window is active iff the next
// boundary is an end: nextEnd <= nextStart. This is level-triggered and matches KEDA, quirks included: on the day a
// DST change skips the local time of start, start does not fire, so the window counts as open from the previous end
// until the next end.
func Window(s Schedule, now time.Time) (active bool, nextStart, nextEnd time.Time) {
	local := now.In(s.loc)
	nextStart = s.start.Next(local).In(s.loc)
	nextEnd = s.end.Next(local).In(s.loc)
	return !nextEnd.After(nextStart), nextStart, nextEnd
}

// MetricName returns KEDA's metric name for a cron trigger at index: s<index>-cron-<tz>-<start>-<end>, where the
// expressions lose their spaces and spell * as x, / as Sl, ? as Qm and , as Cm, and / in the time zone becomes -.
func MetricName(index int, tz, start, end string) string {
	return fmt.Sprintf("s%d-cron-%s-%s-%s", index, strings.ReplaceAll(tz, "/", "-"), metricSpec(start), metricSpec(end))
}

func metricSpec(spec string) string {
	return strings.NewReplacer("*", "x", "/", "Sl", "?", "Qm", ",", "Cm").Replace(strings.Join(strings.Fields(spec), ""))
}

// Occurrence is one opening of a window, from Start to End, both on the schedule's time zone.
type Occurrence struct {
	Start, End time.Time
	// Open is true when the window is open at the time the occurrence was looked up.
	Open bool
}

// Edges is a schedule evaluated by its boundaries: the window is open iff its latest start at or before the time is
// later than its latest end at or before it. Capacity windows and runsPerWindow batches use this rule rather
// than Window's (KEDA's): with an end that fires more often than the start (start on Saturdays, end every day),
// Window counts the window open all week, and a start skipped by a DST change opens it for a whole day. Here a
// start whose local time does not exist that day (the hour a DST change skips) does not open the window.
type Edges struct {
	Open bool
	// LastStart and LastEnd are the latest firings at or before the time (zero when none in five years);
	// NextStart and NextEnd the next ones strictly after it (zero when never).
	LastStart, LastEnd, NextStart, NextEnd time.Time
}

// EdgesAt evaluates the schedule at now by its boundaries (see Edges); the times are on the schedule's time zone.
func EdgesAt(s Schedule, now time.Time) Edges {
	local := now.In(s.loc)
	e := Edges{NextStart: s.start.Next(local), NextEnd: s.end.Next(local)}
	e.LastStart, _ = prevFiring(s.start, local)
	e.LastEnd, _ = prevFiring(s.end, local)
	e.Open = !e.LastStart.IsZero() && e.LastStart.After(e.LastEnd)
	for _, t := range []*time.Time{&e.LastStart, &e.LastEnd, &e.NextStart, &e.NextEnd} {
		if !t.IsZero() {
			*t = t.In(s.loc)
		}
	}
	return e
}

// LatestOccurrence returns the occurrence open at now or, when the window is closed, the latest one that opened at
// or before now, by the boundary rule of Edges. ok is false when the window has not opened within the last five
// years.
func LatestOccurrence(s Schedule, now time.Time) (occ Occurrence, ok bool) {
	e := EdgesAt(s, now)
	if e.LastStart.IsZero() {
		return Occurrence{}, false
	}
	if e.Open {
		return Occurrence{Start: e.LastStart, End: e.NextEnd, Open: true}, true
	}
	return Occurrence{Start: e.LastStart, End: s.end.Next(e.LastStart.Add(-time.Nanosecond)).In(s.loc)}, true
}

// prevFiring returns the latest firing of sched at or before t, looking back at most five years (the horizon of
// robfig's Next). It widens the search step by step, so a frequent schedule costs a few dozen Next calls.
func prevFiring(sched robfig.Schedule, t time.Time) (time.Time, bool) {
	for _, back := range []time.Duration{time.Hour, 25 * time.Hour, 8 * 24 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour, 5 * 367 * 24 * time.Hour} {
		var last time.Time
		for n := sched.Next(t.Add(-back)); !n.IsZero() && !n.After(t); n = sched.Next(n) {
			last = n
		}
		if !last.IsZero() {
			return last.In(t.Location()), true
		}
	}
	return time.Time{}, false
}
