package v1alpha1

import (
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// MaxCapacityWindows is the most capacity windows one ScaledJob may have.
const MaxCapacityWindows = 16

var windowName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// validateCapacityWindows checks what the CRD's schema checks, for objects that did not come through the API
// server: names, bounds, onClose, and a start that differs from the end. Time zones and cron expressions are
// parsed where schedules are evaluated (the dispatcher and the kubectl plugin), with the same field paths.
func validateCapacityWindows(ws []CapacityWindow, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(ws) > MaxCapacityWindows {
		errs = append(errs, field.TooMany(p, len(ws), MaxCapacityWindows))
	}
	seen := map[string]bool{}
	for i, w := range ws {
		wp := p.Index(i)
		switch {
		case w.Name == "":
			errs = append(errs, field.Required(wp.Child("name"), "a window name is required, such as \"nightly-etl\""))
		case len(w.Name) > 63 || !windowName.MatchString(w.Name):
			errs = append(errs, field.Invalid(wp.Child("name"), w.Name, "must be at most 63 lower-case letters, digits or '-', starting and ending with a letter or digit"))
		case seen[w.Name]:
			errs = append(errs, field.Duplicate(wp.Child("name"), w.Name))
		}
		seen[w.Name] = true
		if strings.TrimSpace(w.Timezone) == "" {
			errs = append(errs, field.Required(wp.Child("timezone"), "an IANA time zone is required, such as \"Europe/Berlin\""))
		}
		for _, f := range []struct{ name, v string }{{"start", w.Start}, {"end", w.End}} {
			if strings.TrimSpace(f.v) == "" {
				errs = append(errs, field.Required(wp.Child(f.name), "a 5-field cron expression is required (minute hour day-of-month month day-of-week)"))
			}
		}
		if s, e := strings.Join(strings.Fields(w.Start), " "), strings.Join(strings.Fields(w.End), " "); s != "" && s == e {
			errs = append(errs, field.Invalid(wp.Child("end"), w.End, "must differ from start: a window that opens and closes at the same moment is never open"))
		}
		if w.MaxReplicaCount < 1 || w.MaxReplicaCount > MaxWindowReplicaCount {
			errs = append(errs, field.Invalid(wp.Child("maxReplicaCount"), w.MaxReplicaCount, fmt.Sprintf("must be from 1 to %d", MaxWindowReplicaCount)))
		}
		if m := w.MinReplicaCount; m != nil {
			switch {
			case *m < 0 || *m > MaxWindowReplicaCount:
				errs = append(errs, field.Invalid(wp.Child("minReplicaCount"), *m, fmt.Sprintf("must be from 0 to %d", MaxWindowReplicaCount)))
			case *m > w.MaxReplicaCount:
				errs = append(errs, field.Invalid(wp.Child("minReplicaCount"), *m, fmt.Sprintf("must not exceed the window's maxReplicaCount (%d)", w.MaxReplicaCount)))
			}
		}
		errs = append(errs, validateEnum(wp.Child("onClose"), w.OnClose, OnCloseDrain, OnCloseTerminate)...)
	}
	return errs
}

// validateWindowKeys refuses the cron-only keys runsPerWindow and startingDeadlineSeconds on other trigger types,
// where they would be silently ignored.
// A runsPerWindow trigger must be the ScaledJob's only trigger and there must be no minReplicaCount: Jobs made for
// other triggers or for a baseline would break "exactly N Jobs per window".
func validateWindowKeys(s *ScaledJobSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	ts := s.Triggers
	for i, t := range ts {
		if t.Type == "cron" {
			if _, ok := t.Metadata[CronRunsPerWindow]; !ok {
				continue
			}
			kp := p.Index(i).Child("metadata", CronRunsPerWindow)
			if len(ts) > 1 {
				errs = append(errs, field.Forbidden(kp, "a once-per-window batch must be the ScaledJob's only trigger (Jobs for other triggers would count against exactly runsPerWindow Jobs); put the other triggers in their own ScaledJob"))
			}
			if s.MinReplicas() > 0 {
				errs = append(errs, field.Forbidden(kp, "cannot be combined with spec.minReplicaCount: baseline Jobs would count against exactly runsPerWindow Jobs per window"))
			}
			for j, w := range s.CapacityWindows {
				if w.MinReplicaCount != nil && *w.MinReplicaCount > 0 {
					errs = append(errs, field.Forbidden(field.NewPath("spec", "capacityWindows").Index(j).Child("minReplicaCount"),
						"cannot be combined with a runsPerWindow trigger: pre-warmed Jobs would count against exactly runsPerWindow Jobs per window"))
				}
			}
			continue
		}
		for _, k := range []string{CronRunsPerWindow, CronStartingDeadlineSeconds} {
			if _, ok := t.Metadata[k]; ok {
				errs = append(errs, field.Forbidden(p.Index(i).Child("metadata", k),
					fmt.Sprintf("is a key of the cron trigger only; a %s trigger would ignore it", t.Type)))
			}
		}
	}
	return errs
}

// OnCloseAction returns the window's onClose, "drain" when unset.
func (w *CapacityWindow) OnCloseAction() string {
	if w.OnClose == "" {
		return OnCloseDrain
	}
	return w.OnClose
}
