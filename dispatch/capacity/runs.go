package capacity

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/sources"
)

// RunsInputs is what Runs needs for one runsPerWindow cron trigger.
type RunsInputs struct {
	// Trigger is the trigger's name in status.
	Trigger string
	// Occurrence is the occurrence the trigger's reading is about.
	Occurrence sources.Occurrence
	// Record is the trigger's status record (the occurrence served last), nil when none.
	Record *v1alpha1.WindowRun
	// Created is the number of Jobs known to have been created for the occurrence (the Jobs that carry its
	// annotation, and this process's own creations the cache does not show yet).
	Created int64
	// Now is the time of the decision.
	Now time.Time
	// ScaledJobCreated is when the ScaledJob was created: an occurrence that closed before is not its to miss.
	ScaledJobCreated time.Time
}

// RunsOutcome is how many Jobs the occurrence still wants and what status records.
type RunsOutcome struct {
	// Want is the number of Jobs still to create for the occurrence.
	Want int64
	// Serving is true while the occurrence may get Jobs (its Jobs carry its annotation).
	Serving bool
	// Record is the status record to keep; nil keeps the previous one.
	Record *v1alpha1.WindowRun
	// Missed is true when the occurrence was found missed now (an event is due, once).
	Missed bool
}

// OccurrenceKey is the value of the annotation that binds a Job to its occurrence: the start in UTC, RFC 3339.
func OccurrenceKey(start time.Time) string {
	return start.UTC().Format(time.RFC3339)
}

// RunMessage is a served occurrence's status message.
func RunMessage(created, runs int64, start time.Time) string {
	return fmt.Sprintf("%d of %d Jobs created for the window that opened at %s", created, runs, start.UTC().Format(time.RFC3339))
}

// Runs decides a runsPerWindow occurrence: exactly Runs Jobs per occurrence in total. An occurrence seen for the
// first time is served if it is open and, with a starting deadline, only if it began at most that long ago (then
// also after its close: a late start after downtime); otherwise it is recorded as missed, with no Jobs. An
// occurrence already being served keeps getting Jobs, up to Runs, while it is open or within its deadline.
func Runs(in RunsInputs) RunsOutcome {
	occ := in.Occurrence
	open := occ.Open && in.Now.Before(occ.End)
	withinDeadline := occ.StartingDeadline > 0 && !in.Now.After(occ.Start.Add(occ.StartingDeadline))
	start := metav1.NewTime(occ.Start.UTC().Truncate(time.Second))
	rec := in.Record
	if rec != nil && rec.Occurrence.Time.Equal(start.Time) {
		if rec.Missed {
			return RunsOutcome{}
		}
		created := max(int64(rec.Created), in.Created)
		serving := open || withinDeadline
		if occ.StartingDeadline > 0 {
			serving = withinDeadline || (open && created > 0)
		}
		out := RunsOutcome{Serving: serving && created < occ.Runs}
		if out.Serving {
			out.Want = occ.Runs - created
		}
		if created != int64(rec.Created) || rec.Message == "" {
			r := *rec
			r.Created = int32(min(created, 1<<31-1))
			r.Message = RunMessage(created, occ.Runs, occ.Start)
			out.Record = &r
		}
		return out
	}
	// First sight of this occurrence.
	if !open && in.ScaledJobCreated.After(occ.End) {
		return RunsOutcome{} // it closed before the ScaledJob existed
	}
	servable := open
	if occ.StartingDeadline > 0 {
		servable = withinDeadline
	}
	if servable && in.Created < occ.Runs {
		return RunsOutcome{Want: occ.Runs - in.Created, Serving: true, Record: &v1alpha1.WindowRun{Trigger: in.Trigger, Occurrence: start,
			Created: int32(min(in.Created, 1<<31-1)),
			Message: RunMessage(in.Created, occ.Runs, occ.Start)}}
	}
	if servable || in.Created > 0 {
		return RunsOutcome{}
	}
	why := fmt.Sprintf("the window that opened at %s closed at %s before it could be served", occ.Start.Format(time.RFC3339), occ.End.Format(time.RFC3339))
	if occ.StartingDeadline > 0 {
		why = fmt.Sprintf("the window that opened at %s was first seen %s after it opened, more than startingDeadlineSeconds (%d)",
			occ.Start.Format(time.RFC3339), in.Now.Sub(occ.Start).Round(time.Second), int64(occ.StartingDeadline/time.Second))
	}
	return RunsOutcome{Missed: true, Record: &v1alpha1.WindowRun{Trigger: in.Trigger, Occurrence: start, Missed: true,
		Message: why + "; no Jobs were created for it"}}
}
