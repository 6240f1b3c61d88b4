package dispatch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/dispatch/capacity"
	"github.com/kubedispatch/kubedispatch/dispatch/internal/apilimit"
	"github.com/kubedispatch/kubedispatch/dispatch/message"
	"github.com/kubedispatch/kubedispatch/sources"
)

// ReasonMessageMode is the Ready reason of a healthy message-mode ScaledJob.
const ReasonMessageMode = "Receiving"

// newReceiver builds a message-mode ScaledJob's receiver from its single trigger, credentials resolved as for a
// count-mode poller.
func (r *Reconciler) newReceiver(ctx context.Context, sj *v1alpha1.ScaledJob) (sources.Receiver, error) {
	cfgs, err := r.resolveConfigs(ctx, sj)
	if err != nil {
		return nil, err
	}
	if len(cfgs) != 1 {
		return nil, fmt.Errorf("building the receiver of %s/%s: message mode needs exactly one trigger, have %d", sj.Namespace, sj.Name, len(cfgs))
	}
	deadLetter := ""
	if d := sj.Spec.Dispatch; d != nil {
		deadLetter = d.DeadLetter.DeadLetterFor(cfgs[0].Type)
	}
	return r.Registry.NewReceiver(ctx, cfgs[0], deadLetter)
}

// receiverFingerprint is the digest of sj's resolved receiver configuration (message.Config.Fingerprint): an
// edited TriggerAuthentication that changes nothing for sj leaves its receiver (and its long poll) alone.
func (r *Reconciler) receiverFingerprint(ctx context.Context, sj *v1alpha1.ScaledJob) (string, error) {
	cfgs, err := r.resolveConfigs(ctx, sj)
	if err != nil {
		return "", err
	}
	return hashConfigs(string(sj.UID), cfgs)
}

// reconcileMessage is a message-mode tick: the message loop receives and settles on its own; the tick reports its
// state in status, counts the Jobs and prunes history (only Jobs whose message is settled).
func (r *Reconciler) reconcileMessage(ctx context.Context, sj *v1alpha1.ScaledJob, status *v1alpha1.ScaledJobStatus, paused bool,
	windows []capacity.Window, ev capacity.Evaluation) (ctrl.Result, error) {
	key := keyOf(sj)
	r.pollers.Stop(key) // a ScaledJob switched from count mode reads no backlog any more
	if !r.messages.Ensure(sj) {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	snap := r.messages.Snapshot(key)
	obs := r.observeJobs(ctx, sj)
	if obs.jobs != nil {
		status.Active, status.Pending = int32(obs.running), int32(obs.pending)
		status.Succeeded, status.Failed = obs.succeeded, obs.failed
		r.Metrics.Jobs.WithLabelValues(sj.Namespace, sj.Name, "active").Set(float64(obs.running))
		r.Metrics.Jobs.WithLabelValues(sj.Namespace, sj.Name, "pending").Set(float64(obs.pending))
	}
	r.Metrics.startCounters(sj.Namespace, sj.Name)
	// The message loop holds at most the effective maxReplicaCount; at a terminating close the Jobs above it go
	// and the loop hands their messages back at once.
	var actErr error
	closed, terminate := r.noteCapacity(ctx, sj, status, windows, ev)
	if terminate && obs.jobs != nil {
		if err := r.terminateExcess(ctx, sj, obs, int64(ev.MaxValue()), closed); err != nil {
			actErr = err
			status.Capacity.OpenWindows = sj.Status.Capacity.OpenWindows // retried at the next tick
		} else {
			r.messages.JobFinished(key)
		}
	}
	ms := &v1alpha1.MessageStatus{Held: snap.Held, Acked: snap.Acked, Released: snap.Released, DeadLettered: snap.DeadLettered,
		LeaseErrors: snap.LeaseErrors, LastDeadLetter: snap.LastDeadLetter}
	if !snap.OldestHeld.IsZero() {
		t := metav1.NewTime(snap.OldestHeld.Truncate(time.Second))
		ms.OldestHeldTime = &t
	}
	status.Messages = ms
	status.Triggers = nil

	ignored := "scalingStrategy and minReplicaCount do not apply in message mode"
	reason := fmt.Sprintf("message mode: %d held (at most maxReplicaCount %d), %d acked, %d released, %d dead-lettered; %s",
		snap.Held, ev.MaxValue(), snap.Acked, snap.Released, snap.DeadLettered, ignored)
	if wr := ev.Reason(windows); wr != "" {
		reason = wr + "; " + reason
	}
	if paused {
		reason = "paused by annotation " + v1alpha1.AnnotationPaused + ": no new messages are received; held ones keep their lease; " + reason
	}
	if status.LastDecision == nil || status.LastDecision.Reason != reason {
		status.LastDecision = &v1alpha1.Decision{Time: metav1.NewTime(r.Clock.Now()), Reason: reason}
	}
	switch {
	case snap.ReceiveErr != "":
		msg := apilimit.Truncate(snap.ReceiveErr, 1000)
		if !conditionIs(sj.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, message.ReasonReceiveFailed, msg) {
			r.recorder.Eventf(sj, nil, corev1.EventTypeWarning, message.ReasonReceiveFailed, "Receive", "%s", msg)
		}
		r.setCondition(sj, status, v1alpha1.ConditionReady, metav1.ConditionFalse, message.ReasonReceiveFailed, msg)
	case obs.jobsErr != nil:
		r.setCondition(sj, status, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonJobListError, obs.jobsErr.Error())
	default:
		r.setCondition(sj, status, v1alpha1.ConditionReady, metav1.ConditionTrue, ReasonMessageMode, "receiving messages into free slots; "+ignored)
	}
	active, activeReason := metav1.ConditionFalse, "NoMessagesHeld"
	if snap.Held > 0 {
		active, activeReason = metav1.ConditionTrue, "MessagesHeld"
	}
	r.setCondition(sj, status, v1alpha1.ConditionActive, active, activeReason, fmt.Sprintf("%d messages held", snap.Held))

	if obs.jobs != nil {
		actErr = errors.Join(actErr, r.pruneHistory(ctx, sj, message.Prunable(obs.jobs, r.Clock.Now())))
	}
	err := r.writeStatus(ctx, sj, status)
	r.Metrics.Ticks.WithLabelValues(sj.Namespace, sj.Name).Inc() // after the status write, which a reader then sees
	if err != nil {
		return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil //nolint:nilerr // a conflict or a transient write error: retry soon
	}
	if obs.jobsErr != nil {
		return ctrl.Result{}, obs.jobsErr
	}
	if actErr != nil {
		logr.FromContextOrDiscard(ctx).V(1).Info("Pruning history failed; the next tick retries", "err", actErr)
	}
	requeue := 30 * time.Second
	if n := ev.Next; n != nil {
		requeue = min(requeue, max(n.At.Sub(r.Clock.Now())+100*time.Millisecond, 100*time.Millisecond))
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}
