package capacity

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/sources"
	"github.com/kubedispatch/kubedispatch/sources/cron"
)

// Window is a parsed capacity window.
type Window struct {
	Name     string
	Timezone string
	Schedule cron.Schedule
	Max      int32
	// Min is nil when the window keeps the spec's minReplicaCount.
	Min     *int32
	OnClose string
}

// Parse parses spec.capacityWindows (p is its path). Errors name the window's field, such as
// spec.capacityWindows[0].timezone, and say what was expected; the cron rules are the cron trigger's.
func Parse(ws []v1alpha1.CapacityWindow, p *field.Path) ([]Window, field.ErrorList) {
	out := make([]Window, 0, len(ws))
	var errs field.ErrorList
	for i := range ws {
		w := &ws[i]
		s, err := cron.ParseSchedule(w.Timezone, w.Start, w.End)
		if err != nil {
			var ce *sources.ConfigError
			if !errors.As(err, &ce) {
				errs = append(errs, field.Invalid(p.Index(i), w.Name, err.Error()))
				continue
			}
			// The cron trigger names its metadata keys; a window has the same names as plain fields.
			name := strings.TrimPrefix(ce.Field, "metadata.")
			errs = append(errs, field.Invalid(p.Index(i).Child(name), fieldValue(w, name), strings.ReplaceAll(ce.Detail, "metadata.", "")))
			continue
		}
		out = append(out, Window{Name: w.Name, Timezone: w.Timezone, Schedule: s, Max: w.MaxReplicaCount, Min: w.MinReplicaCount, OnClose: w.OnCloseAction()})
	}
	return out, errs
}

func fieldValue(w *v1alpha1.CapacityWindow, name string) string {
	switch name {
	case "timezone":
		return w.Timezone
	case "start":
		return w.Start
	case "end":
		return w.End
	}
	return ""
}

// WindowState is one window at the evaluated time.
type WindowState struct {
	Name string
	Open bool
	// NextStart and NextEnd are the window's next opening and closing strictly after the evaluated time.
	NextStart, NextEnd time.Time
}

// Limits are the minReplicaCount and maxReplicaCount that apply, as the decision takes them.
type Limits struct {
	// Min and Max are the spec's own pointers when no window sets them (so unset keeps KEDA's defaults), else the
	// largest of the open windows'. Min never exceeds Max when a window set either.
	Min, Max *int32
	// MinFrom and MaxFrom name the window that set Min and Max, "" for the spec.
	MinFrom, MaxFrom string
	// Open lists the open windows in spec order.
	Open []string
}

// Change is the next opening or closing of a window.
type Change struct {
	At     time.Time
	Window string
	Opens  bool
	// Before and After are the limits on either side of the change.
	Before, After Limits
}

// Evaluation is the capacity at one time.
type Evaluation struct {
	Limits
	Windows []WindowState
	// Next is the earliest opening or closing after the evaluated time; nil when there are no windows.
	Next *Change
}

// Evaluate returns the limits at now: outside every window the spec's own values; with windows open, the largest
// max and the largest min among them (a window without minReplicaCount keeps the spec's), the min lowered to the
// max when above it.
func Evaluate(ws []Window, specMin, specMax *int32, now time.Time) Evaluation {
	ev := Evaluation{Windows: states(ws, now)}
	ev.Limits = limits(ws, ev.Windows, specMin, specMax)
	for i, st := range ev.Windows {
		at, opens := st.NextStart, true
		if st.Open {
			at, opens = st.NextEnd, false
		}
		if at.IsZero() {
			continue
		}
		if ev.Next == nil || at.Before(ev.Next.At) {
			ev.Next = &Change{At: at, Window: ws[i].Name, Opens: opens}
		}
	}
	if ev.Next != nil {
		ev.Next.Before = ev.Limits
		ev.Next.After = limits(ws, states(ws, ev.Next.At), specMin, specMax)
	}
	return ev
}

func states(ws []Window, now time.Time) []WindowState {
	out := make([]WindowState, len(ws))
	for i, w := range ws {
		e := cron.EdgesAt(w.Schedule, now)
		out[i] = WindowState{Name: w.Name, Open: e.Open, NextStart: e.NextStart, NextEnd: e.NextEnd}
	}
	return out
}

func limits(ws []Window, st []WindowState, specMin, specMax *int32) Limits {
	l := Limits{Min: specMin, Max: specMax}
	var maxV, minV int32 = -1, -1
	for i, w := range ws {
		if !st[i].Open {
			continue
		}
		l.Open = append(l.Open, w.Name)
		if w.Max > maxV {
			maxV, l.MaxFrom = w.Max, w.Name
		}
		if w.Min != nil && *w.Min > minV {
			minV, l.MinFrom = *w.Min, w.Name
		}
	}
	if maxV < 0 {
		return l
	}
	l.Max = &maxV
	if minV >= 0 {
		l.Min = &minV
	}
	if l.Min != nil && *l.Min > maxV {
		clamped := maxV
		l.Min = &clamped
	}
	return l
}

// MaxValue is the effective maxReplicaCount (100, KEDA's default, when unset).
func (l Limits) MaxValue() int32 {
	if l.Max == nil {
		return 100
	}
	return *l.Max
}

// MinValue is the effective minReplicaCount (0 when unset).
func (l Limits) MinValue() int32 {
	if l.Min == nil {
		return 0
	}
	return *l.Min
}

// Reason describes the limits for a decision's reason, naming the window that set them: "window nightly-etl open
// until 05:00 Europe/Berlin: max 200". It is "" when the spec's values apply.
func (ev Evaluation) Reason(ws []Window) string {
	if ev.MaxFrom == "" && ev.MinFrom == "" {
		return ""
	}
	var parts []string
	if ev.MaxFrom != "" {
		parts = append(parts, fmt.Sprintf("window %s open until %s: max %d", ev.MaxFrom, ev.until(ws, ev.MaxFrom), ev.MaxValue()))
	}
	if ev.MinFrom != "" {
		if ev.MinFrom == ev.MaxFrom {
			parts[0] += fmt.Sprintf(", min %d", ev.MinValue())
		} else {
			parts = append(parts, fmt.Sprintf("window %s open until %s: min %d", ev.MinFrom, ev.until(ws, ev.MinFrom), ev.MinValue()))
		}
	}
	return strings.Join(parts, "; ")
}

func (ev Evaluation) until(ws []Window, name string) string {
	for i, w := range ws {
		if w.Name == name && i < len(ev.Windows) {
			return FormatTime(ev.Windows[i].NextEnd, w.Timezone)
		}
	}
	return "?"
}

// FormatTime renders a window boundary on its own time zone: "2026-12-24 05:00 Europe/Berlin" ("never" for zero).
func FormatTime(t time.Time, timezone string) string {
	if t.IsZero() {
		return "never"
	}
	return t.Format("2006-01-02 15:04") + " " + timezone
}

// Describe says what the change does: "window nightly-etl closes: max 200 -> 10".
func (c Change) Describe() string {
	verb := "closes"
	if c.Opens {
		verb = "opens"
	}
	s := fmt.Sprintf("window %s %s", c.Window, verb)
	var diffs []string
	if b, a := c.Before.MaxValue(), c.After.MaxValue(); b != a {
		diffs = append(diffs, fmt.Sprintf("max %d -> %d", b, a))
	}
	if b, a := c.Before.MinValue(), c.After.MinValue(); b != a {
		diffs = append(diffs, fmt.Sprintf("min %d -> %d", b, a))
	}
	if len(diffs) == 0 {
		return s + ": capacity unchanged"
	}
	return s + ": " + strings.Join(diffs, ", ")
}

// Closed returns the windows of prevOpen (the windows open at the previous evaluation, from status) that are
// closed now, and whether any of them terminates at its close. Windows no longer in the spec are ignored.
func Closed(ws []Window, prevOpen []string, now Limits) (closed []string, terminate bool) {
	open := map[string]bool{}
	for _, n := range now.Open {
		open[n] = true
	}
	byName := map[string]Window{}
	for _, w := range ws {
		byName[w.Name] = w
	}
	for _, n := range prevOpen {
		w, ok := byName[n]
		if !ok || open[n] {
			continue
		}
		closed = append(closed, n)
		if w.OnClose == v1alpha1.OnCloseTerminate {
			terminate = true
		}
	}
	return closed, terminate
}

// Opened returns the windows open now that were not in prevOpen.
func Opened(prevOpen []string, now Limits) []string {
	was := map[string]bool{}
	for _, n := range prevOpen {
		was[n] = true
	}
	var out []string
	for _, n := range now.Open {
		if !was[n] {
			out = append(out, n)
		}
	}
	return out
}

// Unfinished is a Job that has not finished, as Excess weighs it.
type Unfinished struct {
	Name    string
	Pending bool
	Created time.Time
}

// Excess picks the Jobs a terminating close stops so that keep remain: pending Jobs first (no work is lost), then
// the newest (the least work is lost). Ties break by name, so the choice is stable.
func Excess(jobs []Unfinished, keep int64) []string {
	n := int64(len(jobs)) - max(keep, 0)
	if n <= 0 {
		return nil
	}
	sorted := append([]Unfinished(nil), jobs...)
	sort.Slice(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if a.Pending != b.Pending {
			return a.Pending
		}
		if !a.Created.Equal(b.Created) {
			return a.Created.After(b.Created)
		}
		return a.Name < b.Name
	})
	out := make([]string, 0, n)
	for _, j := range sorted[:n] {
		out = append(out, j.Name)
	}
	return out
}
