package dispatch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-logr/logr"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/dispatch/capacity"
)

// Event reasons of capacity windows and once-per-window batches.
const (
	ReasonWindowOpened     = "WindowOpened"
	ReasonWindowClosed     = "WindowClosed"
	ReasonWindowTerminated = "WindowClosedTerminated"
	ReasonMissedWindow     = "MissedWindow"
)

// Validate runs the static validation and parses the capacity windows (time zones and cron expressions), so a
// bad window is an invalid spec like any other: nothing is created or deleted until it is fixed.
func Validate(sj *v1alpha1.ScaledJob) ([]capacity.Window, field.ErrorList) {
	errs := sj.Validate()
	ws, werrs := capacity.Parse(sj.Spec.CapacityWindows, field.NewPath("spec", "capacityWindows"))
	return ws, append(errs, werrs...)
}

// EffectiveCapacity evaluates sj's capacity windows at now; a spec whose windows do not parse gets the spec's own
// limits (such a spec is invalid and creates nothing anyway).
func EffectiveCapacity(sj *v1alpha1.ScaledJob, now time.Time) ([]capacity.Window, capacity.Evaluation) {
	ws, _ := capacity.Parse(sj.Spec.CapacityWindows, field.NewPath("spec", "capacityWindows"))
	return ws, capacity.Evaluate(ws, sj.Spec.MinReplicaCount, sj.Spec.MaxReplicaCount, now)
}

// windowMaxReplicas is the message loops' view of the effective maxReplicaCount: the number of messages held at once.
func windowMaxReplicas(sj *v1alpha1.ScaledJob, now time.Time) int32 {
	_, ev := EffectiveCapacity(sj, now)
	return ev.MaxValue()
}

// noteCapacity writes the capacity at this tick into status and the max-replicas metric, and emits one event per
// window that opened or closed since the status was last written. It returns the windows that closed and whether
// one of them terminates at its close.
func (r *Reconciler) noteCapacity(ctx context.Context, sj *v1alpha1.ScaledJob, status *v1alpha1.ScaledJobStatus, ws []capacity.Window, ev capacity.Evaluation) (closed []string, terminate bool) {
	var prevOpen []string
	if c := sj.Status.Capacity; c != nil {
		prevOpen = c.OpenWindows
	}
	closed, terminate = capacity.Closed(ws, prevOpen, ev.Limits)
	for _, name := range capacity.Opened(prevOpen, ev.Limits) {
		r.recorder.Eventf(sj, nil, corev1.EventTypeNormal, ReasonWindowOpened, "Capacity", "capacity window %s opened: %s", name, ev.Reason(ws))
		logr.FromContextOrDiscard(ctx).Info("Capacity window opened", "window", name, "maxReplicaCount", ev.MaxValue(), "minReplicaCount", ev.MinValue())
	}
	for _, name := range closed {
		r.recorder.Eventf(sj, nil, corev1.EventTypeNormal, ReasonWindowClosed, "Capacity", "capacity window %s closed (onClose %s): max %d, min %d",
			name, onCloseOf(ws, name), ev.MaxValue(), ev.MinValue())
		logr.FromContextOrDiscard(ctx).Info("Capacity window closed", "window", name, "maxReplicaCount", ev.MaxValue(), "minReplicaCount", ev.MinValue())
	}
	status.Capacity = &v1alpha1.CapacityStatus{MaxReplicaCount: ev.MaxValue(), MinReplicaCount: ev.MinValue(),
		MaxFrom: ev.MaxFrom, MinFrom: ev.MinFrom, OpenWindows: ev.Open}
	status.NextWindowChange = nil
	if n := ev.Next; n != nil {
		change := "closes"
		if n.Opens {
			change = "opens"
		}
		status.NextWindowChange = &v1alpha1.WindowChange{Time: metav1.NewTime(n.At), Window: n.Window, Change: change, Description: n.Describe()}
	}
	r.Metrics.MaxReplicas.WithLabelValues(sj.Namespace, sj.Name).Set(float64(ev.MaxValue()))
	return closed, terminate
}

func onCloseOf(ws []capacity.Window, name string) string {
	for _, w := range ws {
		if w.Name == name {
			return w.OnClose
		}
	}
	return v1alpha1.OnCloseDrain
}

// terminateExcess deletes the unfinished Jobs above keep after a terminating window closed (pending ones first,
// then the newest). In message mode the message loop hands a deleted Job's message back at once; the attempt is
// not counted, as the next Job of the message takes the deleted one's attempt number.
func (r *Reconciler) terminateExcess(ctx context.Context, sj *v1alpha1.ScaledJob, obs observation, keep int64, closed []string) error {
	var unfinished []capacity.Unfinished
	byName := map[string]*batchv1.Job{}
	for i := range obs.jobs {
		j := &obs.jobs[i]
		if IsFinished(j) || !j.DeletionTimestamp.IsZero() {
			continue
		}
		byName[j.Name] = j
		unfinished = append(unfinished, capacity.Unfinished{Name: j.Name, Created: j.CreationTimestamp.Time,
			Pending: JobPending(j, obs.podsByJob[j.Name], sj.Spec.ScalingStrategy.PendingPodConditions)})
	}
	victims := capacity.Excess(unfinished, keep)
	var errs []error
	deleted := 0
	for _, name := range victims {
		err := r.Client.Delete(ctx, byName[name], client.PropagationPolicy(metav1.DeletePropagationBackground),
			client.Preconditions{UID: &byName[name].UID})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting job %s: %w", name, err))
			continue
		}
		deleted++
	}
	if deleted > 0 {
		r.Metrics.JobsDeleted.WithLabelValues(sj.Namespace, sj.Name, "window").Add(float64(deleted))
		r.recorder.Eventf(sj, nil, corev1.EventTypeNormal, ReasonWindowTerminated, "Capacity",
			"capacity window %s closed with onClose terminate: deleted %d unfinished Job(s) above maxReplicaCount %d",
			strings.Join(closed, ", "), deleted, keep)
		logr.FromContextOrDiscard(ctx).Info("Terminated Jobs at a window's close", "windows", closed, "deleted", deleted, "keep", keep)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("terminating Jobs above the capacity after window %s closed: %w", strings.Join(closed, ", "), err)
	}
	return nil
}

// runPlan is what applyRuns decided for a runsPerWindow occurrence being served: the annotations its Jobs carry,
// and what countRuns needs to record the Jobs created for it.
type runPlan struct {
	annotations map[string]string
	trigger     string
	runs        int64
	start       time.Time
}

// applyRuns turns a runsPerWindow trigger's reading into the Jobs its occurrence still wants (runsPerWindow minus
// those created for it), records the occurrence in status and reports a missed one. The Jobs created for it are
// those carrying its annotation plus this process's creations the cache does not show yet (only an occurrence
// being served gets Jobs: validation makes the trigger the ScaledJob's only one, without a baseline), and at least
// the count in status. The plan is nil when no occurrence is being served.
func (r *Reconciler) applyRuns(ctx context.Context, sj *v1alpha1.ScaledJob, status *v1alpha1.ScaledJobStatus, obs *observation) *runPlan {
	// Records of triggers that are gone, or no longer runsPerWindow, go.
	kept := status.WindowRuns[:0:0]
	for _, run := range status.WindowRuns {
		for i, t := range sj.Spec.Triggers {
			if _, ok := t.Metadata[v1alpha1.CronRunsPerWindow]; ok && t.Type == "cron" && t.EffectiveName(i) == run.Trigger {
				kept = append(kept, run)
				break
			}
		}
	}
	status.WindowRuns = kept
	var plan *runPlan
	for idx, occ := range obs.occurrences {
		reading := &obs.readings[idx]
		key := capacity.OccurrenceKey(occ.Start)
		created := obs.unseen
		for i := range obs.jobs {
			if obs.jobs[i].Annotations[v1alpha1.AnnotationWindowOccurrence] == key {
				created++
			}
		}
		out := capacity.Runs(capacity.RunsInputs{Trigger: reading.Name, Occurrence: *occ, Record: windowRun(status, reading.Name),
			Created: created, Now: r.Clock.Now(), ScaledJobCreated: sj.CreationTimestamp.Time})
		reading.Backlog, reading.Target, reading.Active = float64(out.Want), 1, out.Want > 0
		for i := range obs.statuses {
			if obs.statuses[i].Name == reading.Name {
				obs.statuses[i].Backlog, obs.statuses[i].Active = formatFloat(float64(out.Want)), out.Want > 0
			}
		}
		if out.Record != nil {
			setWindowRun(status, *out.Record)
		}
		if out.Missed {
			r.recorder.Eventf(sj, nil, corev1.EventTypeWarning, ReasonMissedWindow, "Runs", "trigger %s: %s", reading.Name, out.Record.Message)
			logr.FromContextOrDiscard(ctx).Info("Missed a window occurrence", "trigger", reading.Name, "occurrence", key)
		}
		if out.Serving {
			plan = &runPlan{annotations: map[string]string{v1alpha1.AnnotationWindowOccurrence: key}, trigger: reading.Name,
				runs: occ.Runs, start: occ.Start}
		}
	}
	return plan
}

// countRuns adds the Jobs just created for the occurrence of plan to its status record.
func countRuns(status *v1alpha1.ScaledJobStatus, plan *runPlan, created int64) {
	if plan == nil || created == 0 {
		return
	}
	if rec := windowRun(status, plan.trigger); rec != nil {
		rec.Created = int32(min(int64(rec.Created)+created, 1<<31-1))
		rec.Message = capacity.RunMessage(int64(rec.Created), plan.runs, plan.start)
	}
}

func windowRun(status *v1alpha1.ScaledJobStatus, trigger string) *v1alpha1.WindowRun {
	for i := range status.WindowRuns {
		if status.WindowRuns[i].Trigger == trigger {
			return &status.WindowRuns[i]
		}
	}
	return nil
}

func setWindowRun(status *v1alpha1.ScaledJobStatus, run v1alpha1.WindowRun) {
	for i := range status.WindowRuns {
		if status.WindowRuns[i].Trigger == run.Trigger {
			status.WindowRuns[i] = run
			return
		}
	}
	status.WindowRuns = append(status.WindowRuns, run)
}
