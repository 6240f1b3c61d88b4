package dispatch

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/dispatch/internal/apilimit"
)

// setCondition sets a condition on the status being built (lastTransitionTime moves only on a status change).
func (r *Reconciler) setCondition(sj *v1alpha1.ScaledJob, status *v1alpha1.ScaledJobStatus, typ string, s metav1.ConditionStatus, reason, msg string) {
	apimeta.SetStatusCondition(&status.Conditions, metav1.Condition{
		Type: typ, Status: s, Reason: reason, Message: apilimit.Truncate(msg, apilimit.ConditionMessage), ObservedGeneration: sj.Generation,
		LastTransitionTime: metav1.NewTime(r.Clock.Now()),
	})
}

// conditionIs reports whether conds already holds exactly this condition (used to emit events only on change).
func conditionIs(conds []metav1.Condition, typ string, s metav1.ConditionStatus, reason, msg string) bool {
	c := apimeta.FindStatusCondition(conds, typ)
	return c != nil && c.Status == s && c.Reason == reason && c.Message == apilimit.Truncate(msg, apilimit.ConditionMessage)
}

// setActive sets the Active condition from the decision.
func (r *Reconciler) setActive(sj *v1alpha1.ScaledJob, status *v1alpha1.ScaledJobStatus, d Decision, paused bool) {
	switch {
	case paused:
		r.setCondition(sj, status, v1alpha1.ConditionActive, metav1.ConditionFalse, "Paused", "paused by annotation "+v1alpha1.AnnotationPaused)
	case d.Active:
		r.setCondition(sj, status, v1alpha1.ConditionActive, metav1.ConditionTrue, "BacklogPresent", d.Reason)
	default:
		r.setCondition(sj, status, v1alpha1.ConditionActive, metav1.ConditionFalse, "NoBacklog", d.Reason)
	}
}

// notePause sets the Paused condition and emits an event when the pause state changes.
func (r *Reconciler) notePause(ctx context.Context, sj *v1alpha1.ScaledJob, status *v1alpha1.ScaledJobStatus, paused bool) {
	was := apimeta.IsStatusConditionTrue(sj.Status.Conditions, v1alpha1.ConditionPaused)
	if paused {
		r.setCondition(sj, status, v1alpha1.ConditionPaused, metav1.ConditionTrue, "PausedByAnnotation",
			fmt.Sprintf("annotation %s is set: no Jobs are created; history is still pruned. Remove it to resume.", v1alpha1.AnnotationPaused))
	} else {
		r.setCondition(sj, status, v1alpha1.ConditionPaused, metav1.ConditionFalse, "NotPaused", "Jobs are created as triggers demand")
	}
	if paused != was {
		reason, note := ReasonResumed, "Resumed: Jobs are created again"
		if paused {
			reason, note = ReasonPaused, "Paused by annotation "+v1alpha1.AnnotationPaused+": no Jobs are created"
		}
		if paused || apimeta.FindStatusCondition(sj.Status.Conditions, v1alpha1.ConditionPaused) != nil {
			r.recorder.Eventf(sj, nil, corev1.EventTypeNormal, reason, "Pause", "%s", note)
			logr.FromContextOrDiscard(ctx).Info("Pause state changed", "paused", paused)
		}
	}
}

// writeStatus writes the status when something a person or a tool would act on changed: counts, conditions,
// trigger backlogs and errors, the decision's Job count or reason. Times that move on every tick (a trigger's
// sampledAt, lastActiveTime, the time of a decision identical to the last) alone never cause a write:
// lastDecision.time stays the time that decision was first made.
func (r *Reconciler) writeStatus(ctx context.Context, sj *v1alpha1.ScaledJob, status *v1alpha1.ScaledJobStatus) error {
	if !MaterialChange(&sj.Status, status) {
		return nil
	}
	if old, cur := sj.Status.LastDecision, status.LastDecision; old != nil && cur != nil &&
		old.JobsCreated == cur.JobsCreated && old.Reason == cur.Reason {
		cur.Time = old.Time
	}
	// An update replaces the whole status, so zero counts and cleared fields are written too (a merge patch leaves
	// omitted zero values untouched). A conflict requeues the ScaledJob; Jobs created this tick are remembered by
	// the expectations, so the retry does not create them again.
	sj.Status = *status
	if err := r.Client.Status().Update(ctx, sj, client.FieldOwner(v1alpha1.FieldManager)); err != nil {
		return fmt.Errorf("updating status of %s/%s: %w", sj.Namespace, sj.Name, err)
	}
	r.Metrics.StatusWrites.Inc()
	return nil
}

// MaterialChange reports whether cur differs from old in anything but the times that move on every tick
// (triggers' sampledAt, lastActiveTime, lastDecision.time).
func MaterialChange(old, cur *v1alpha1.ScaledJobStatus) bool {
	a, b := old.DeepCopy(), cur.DeepCopy()
	for _, s := range []*v1alpha1.ScaledJobStatus{a, b} {
		s.LastActiveTime = nil
		if s.LastDecision != nil {
			s.LastDecision.Time = metav1.Time{}
		}
		for i := range s.Triggers {
			s.Triggers[i].SampledAt = nil
		}
	}
	return !equality.Semantic.DeepEqual(a, b)
}

// conditionHasReason reports whether conds holds condition typ with reason.
func conditionHasReason(conds []metav1.Condition, typ, reason string) bool {
	c := apimeta.FindStatusCondition(conds, typ)
	return c != nil && c.Reason == reason
}
