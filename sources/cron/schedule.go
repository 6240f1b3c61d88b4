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
