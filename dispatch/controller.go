package dispatch

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/dispatch/capacity"
	"github.com/kubedispatch/kubedispatch/dispatch/internal/apilimit"
	"github.com/kubedispatch/kubedispatch/dispatch/internal/index"
	"github.com/kubedispatch/kubedispatch/dispatch/message"
	"github.com/kubedispatch/kubedispatch/jobtemplate"
	"github.com/kubedispatch/kubedispatch/sources"
)

// Event reasons on the ScaledJob.
const (
	ReasonJobsCreated     = "JobsCreated"
	ReasonJobCreateFailed = "JobCreateFailed"
	ReasonTriggerError    = "TriggerError"
	ReasonInvalidSpec     = "InvalidSpec"
	ReasonPaused          = "Paused"
	ReasonResumed         = "Resumed"
	ReasonRolloutDeleted  = "RolloutDeletedJobs"
	ReasonHistoryError    = "HistoryPruneFailed"
	ReasonJobListError    = "JobListError"
	// ReasonFailingJobsBackoff says creation is limited because the ScaledJob's Jobs keep failing.
	ReasonFailingJobsBackoff = "FailingJobsBackoff"
)

// Reconciler runs one observe -> decide -> act tick per ScaledJob: every pollingInterval, and also as soon as one
// of its Jobs finishes or disappears.
type Reconciler struct {
	// Client reads from the informer cache (Jobs, pods, ScaledJobs, TriggerAuthentications) and writes to the API.
	Client client.Client
	// APIReader reads Secrets straight from the API server: they are never cached.
	APIReader client.Reader
	// Registry builds trigger sources by type.
	Registry *sources.Registry
	// Clock is the only source of time.
	Clock clock.Clock
	// Recorder emits events on ScaledJobs.
	Recorder events.EventRecorder
	// Metrics are updated on every tick.
	Metrics *Metrics
	// ClusterAuthNamespace is where ClusterTriggerAuthentication Secrets are read from (the dispatcher's namespace).
	ClusterAuthNamespace string
	// CreateWorkers bounds parallel Job creations (the client's QPS limiter still applies); default 32.
	CreateWorkers int
	// TriggerTimeout bounds one trigger reading; default 10s.
	TriggerTimeout time.Duration
	// MaxCreatesPerTick bounds the Jobs one tick creates; a ScaledJob that wants more is requeued at once, so no
	// ScaledJob holds a worker for long and no tick allocates in proportion to a huge maxReplicaCount. Default 500.
	MaxCreatesPerTick int64
	// TriggerConcurrency bounds trigger reads in flight across all ScaledJobs; default 64.
	TriggerConcurrency int
	// SecretRefresh is the longest resolved trigger credentials are reused before being read again; default 5m.
	SecretRefresh time.Duration
	// ShardLabelKeys are the label keys of --watch-label-selector: each ScaledJob's values of them are set on its
	// Jobs' pods too, so the shard's pod cache (selected the same way) holds its own pods.
	ShardLabelKeys []string
	// NameSuffix makes Job name suffixes; jobtemplate.RandomSuffix when nil.
	NameSuffix func() string
	// MessageMetrics are message mode's metrics; unregistered ones when nil.
	MessageMetrics *message.Metrics

	once         sync.Once
	due          sync.Map // ScaledJob key -> time.Time its next poll is due
	expectations *expectations
	sourceCache  *sourceCache
	pollers      *Pollers
	messages     *message.Loops
	recorder     events.EventRecorder // Recorder, with every note cut to what the API server accepts
}

func (r *Reconciler) init() {
	r.once.Do(func() {
		r.recorder = apilimit.Recorder(r.Recorder)
		r.expectations = newExpectations(2 * time.Minute)
		r.sourceCache = newSourceCache()
		r.pollers = newPollers(r, r.TriggerConcurrency, r.SecretRefresh)
		r.messages = message.NewLoops(message.Config{Client: r.Client, APIReader: r.APIReader, Clock: r.Clock,
			Recorder: r.recorder, Metrics: r.MessageMetrics, NewReceiver: r.newReceiver, Fingerprint: r.receiverFingerprint, Wake: r.pollers.wake,
			Log: ctrl.Log.WithName("message"), SecretRefresh: r.pollers.SecretRefresh, MaxReplicas: windowMaxReplicas, ShardLabelKeys: r.ShardLabelKeys,
			OnJobCreated: func(namespace, name string) { r.Metrics.JobsCreated.WithLabelValues(namespace, name).Inc() }})
		if r.CreateWorkers <= 0 {
			r.CreateWorkers = 32
		}
		if r.MaxCreatesPerTick <= 0 {
			r.MaxCreatesPerTick = 500
		}
		if r.TriggerTimeout <= 0 {
			r.TriggerTimeout = 10 * time.Second
		}
		if r.NameSuffix == nil {
			r.NameSuffix = jobtemplate.RandomSuffix
		}
		if r.Metrics == nil {
			r.Metrics = NewMetrics(nil)
		}
	})
}

// SetupWithManager registers the controller: ScaledJobs, and the Jobs they own (only a Job finishing or being
// deleted wakes the ScaledJob up early); TriggerAuthentications, ClusterTriggerAuthentications and Namespaces'
// labels, whose changes re-resolve the credentials of the ScaledJobs that use them (authwatch.go).
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, concurrency int) error {
	r.init()
	jobDone := predicate.Funcs{
		CreateFunc: func(event.CreateEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*batchv1.Job)
			n, ok2 := e.ObjectNew.(*batchv1.Job)
			done := ok1 && ok2 && !IsFinished(o) && IsFinished(n)
			if done {
				// The refill is decided on a reading taken after this Job finished (its message is gone by then).
				key := n.Namespace + "/" + n.Labels[v1alpha1.LabelScaledJob]
				r.pollers.Refresh(key, n.Name, r.Clock.Now())
				r.messages.JobFinished(key)
				r.Metrics.JobsFinished.WithLabelValues(n.Namespace, n.Labels[v1alpha1.LabelScaledJob], finishResult(n)).Inc()
			}
			return done
		},
		DeleteFunc: func(e event.DeleteEvent) bool {
			r.messages.JobFinished(e.Object.GetNamespace() + "/" + e.Object.GetLabels()[v1alpha1.LabelScaledJob])
			return true
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
	// An annotation change (such as unpausing) asks for a fresh reading: the stored one may be a pollingInterval
	// old and predate the work waiting now. A spec change rebuilds the poller, which reads at once.
	readOnAnnotationChange := predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			if (predicate.AnnotationChangedPredicate{}).Update(e) {
				r.pollers.ReadNow(e.ObjectNew.GetNamespace() + "/" + e.ObjectNew.GetName())
			}
			return true
		},
	}
	authLog := mgr.GetLogger().WithName("authwatch")
	if err := index.Register(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return err
	}
	if err := mgr.Add(r.pollers); err != nil {
		return fmt.Errorf("adding the trigger pollers: %w", err)
	}
	if err := mgr.Add(r.messages); err != nil {
		return fmt.Errorf("adding the message loops: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("scaledjob").
		For(&v1alpha1.ScaledJob{}, builder.WithPredicates(readOnAnnotationChange, predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&batchv1.Job{}, builder.WithPredicates(jobDone)).
		WatchesRawSource(source.Channel(r.pollers.wake, &handler.EnqueueRequestForObject{})).
		Watches(&v1alpha1.TriggerAuthentication{}, authHandler(authLog, r.authChanged(v1alpha1.KindTriggerAuthentication))).
		Watches(&v1alpha1.ClusterTriggerAuthentication{}, authHandler(authLog, r.authChanged(v1alpha1.KindClusterTriggerAuthentication))).
		Watches(&corev1.Namespace{}, r.namespaceHandler(authLog)).
		// Transient read failures retry with back-off from 100ms, capped at 30s (the default pollingInterval), so a
		// long outage is noticed within 30s of its end instead of controller-runtime's default cap of 1000s.
		WithOptions(controller.Options{MaxConcurrentReconciles: concurrency,
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](100*time.Millisecond, 30*time.Second)}).
		Complete(r)
}

// observation is what one tick read. ok is false when any read failed: then nothing is created.
type observation struct {
	jobs      []batchv1.Job // owned Jobs in the cache
	unseen    int64         // Jobs created by this process that the cache does not show yet
	running   int64
	pending   int64
	succeeded int32
	failed    int32
	readings  []TriggerReading
	statuses  []v1alpha1.TriggerStatus
	err       error        // first failed read (jobs or triggers); nil when the observation is complete
	outcomes  []JobOutcome // finished Jobs, for the failing-Jobs back-off
	waiting   bool         // no reading of this generation yet: decide later
	// finishedAfterReading counts the Jobs seen finishing after the reading was taken: the reading still counts
	// their work, so the decision counts them as running (a fresh reading follows within about a second).
	finishedAfterReading int64
	jobsErr              error    // the Job or pod list failed: nothing can be decided
	failing              []string // triggers whose reading failed this tick (their names)
	invalid              error    // permanent configuration error of a trigger or its authentication
	listed               int      // Jobs carrying the ScaledJob's label, owned or not
	podsByJob            map[string][]corev1.Pod
	// occurrences holds, by index into readings, the window occurrence of a runsPerWindow cron trigger.
	occurrences map[int]*sources.Occurrence
}

// Reconcile runs one tick for a ScaledJob.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	r.init()
	start := r.Clock.Now()
	log := logr.FromContextOrDiscard(ctx)

	var sj v1alpha1.ScaledJob
	if err := r.Client.Get(ctx, req.NamespacedName, &sj); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.Namespace, req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("reading ScaledJob %s: %w", req, err)
	}
	if !sj.DeletionTimestamp.IsZero() {
		r.forget(sj.Namespace, sj.Name)
		return ctrl.Result{}, nil
	}
	poll := time.Duration(sj.Spec.PollingIntervalSeconds()) * time.Second
	if due, ok := r.due.Load(keyOf(&sj)); ok && !start.Before(due.(time.Time)) {
		r.Metrics.TickLag.Observe(start.Sub(due.(time.Time)).Seconds())
	}
	status := sj.Status.DeepCopy()
	status.ObservedGeneration = sj.Generation

	// A spec that fails validation never creates or deletes anything; it waits for an edit.
	windows, errs := Validate(&sj)
	if len(errs) > 0 {
		msg := errs.ToAggregate().Error()
		r.messages.Stop(keyOf(&sj)) // no message is received while the spec is invalid
		r.Metrics.ScaledJobInvalid.WithLabelValues(sj.Namespace, sj.Name).Set(1)
		r.Metrics.TickDuration.WithLabelValues("invalid").Observe(r.Clock.Since(start).Seconds())
		// ticks_total counts ticks whose status write is done, so a reader that waits for it sees their status.
		defer r.Metrics.Ticks.WithLabelValues(sj.Namespace, sj.Name).Inc()
		r.setCondition(&sj, status, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonInvalidSpec, msg)
		r.setCondition(&sj, status, v1alpha1.ConditionActive, metav1.ConditionFalse, ReasonInvalidSpec, "no Jobs are created until the spec is fixed")
		status.LastDecision = &v1alpha1.Decision{Time: metav1.NewTime(r.Clock.Now()), Reason: "no Jobs: the spec is invalid: " + apilimit.Truncate(msg, 500)}
		if !conditionIs(sj.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonInvalidSpec, msg) {
			r.recorder.Eventf(&sj, nil, corev1.EventTypeWarning, ReasonInvalidSpec, "Validate", "%s", msg)
			log.Info("ScaledJob spec is invalid", "err", msg)
		}
		return ctrl.Result{}, r.writeStatus(ctx, &sj, status)
	}

	paused := v1alpha1.IsPaused(&sj)
	r.Metrics.Paused.WithLabelValues(sj.Namespace, sj.Name).Set(boolFloat(paused))
	r.notePause(ctx, &sj, status, paused)
	ev := capacity.Evaluate(windows, sj.Spec.MinReplicaCount, sj.Spec.MaxReplicaCount, start)
	if sj.Spec.IsMessageMode() {
		r.Metrics.ScaledJobInvalid.WithLabelValues(sj.Namespace, sj.Name).Set(0)
		return r.reconcileMessage(ctx, &sj, status, paused, windows, ev)
	}
	r.messages.Stop(keyOf(&sj)) // switched back to count mode
	status.Messages = nil

	// 1. Observe: the Jobs (cache plus our own creations not yet in it) and every trigger's latest reading from
	// its poller (no queue I/O here).
	polling := r.pollers.Ensure(&sj)
	obs := r.observe(ctx, &sj)
	if obs.waiting && obs.jobsErr == nil {
		// The poller wakes this ScaledJob as soon as its reading is in; the requeue is only a safety net (short
		// while the pollers have not started yet, right after this replica became the leader).
		log.V(1).Info("Waiting for a fresh trigger reading")
		if !polling {
			return ctrl.Result{RequeueAfter: time.Second}, nil
		}
		return ctrl.Result{RequeueAfter: poll}, nil
	}
	if obs.jobs != nil { // on a failed Job list, keep the last counts rather than showing zeros
		status.Active, status.Pending = int32(obs.running), int32(obs.pending)
		status.Succeeded, status.Failed = obs.succeeded, obs.failed
		r.Metrics.Jobs.WithLabelValues(sj.Namespace, sj.Name, "active").Set(float64(obs.running))
		r.Metrics.Jobs.WithLabelValues(sj.Namespace, sj.Name, "pending").Set(float64(obs.pending))
	}
	r.Metrics.startCounters(sj.Namespace, sj.Name)
	if len(obs.statuses) > 0 {
		status.Triggers = obs.statuses
	}
	// The capacity windows: the limits that apply now, and at a terminating close the Jobs above them go (never
	// for a ScaledJob whose triggers are misconfigured, nor on a partial Job list).
	var actErr error
	closed, terminate := r.noteCapacity(ctx, &sj, status, windows, ev)
	if terminate && obs.invalid == nil && obs.jobs != nil {
		if err := r.terminateExcess(ctx, &sj, obs, int64(ev.MaxValue()), closed); err != nil {
			actErr = err
			status.Capacity.OpenWindows = sj.Status.Capacity.OpenWindows // retried at the next tick
		}
	}

	// 2. Decide, only on a complete observation and when not paused.
	var decision Decision
	moreWanted := false
	var retryAt time.Time // the failing-Jobs back-off's next probe
	switch {
	case obs.invalid != nil:
		r.Metrics.ScaledJobInvalid.WithLabelValues(sj.Namespace, sj.Name).Set(1)
		msg := describeInvalid(obs.invalid)
		reason := "InvalidTrigger"
		if !conditionIs(sj.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg) {
			r.recorder.Eventf(&sj, nil, corev1.EventTypeWarning, ReasonTriggerError, "ReadTriggers", "%s", msg)
			log.Info("Trigger configuration is invalid", "err", msg)
		}
		r.setCondition(&sj, status, v1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
		status.LastDecision = &v1alpha1.Decision{Time: metav1.NewTime(r.Clock.Now()), Reason: "no Jobs: " + apilimit.Truncate(msg, 500)}
		r.setCondition(&sj, status, v1alpha1.ConditionActive, metav1.ConditionUnknown, reason, "activity is unknown until the trigger configuration is fixed")
	case obs.jobsErr != nil:
		r.Metrics.ScaledJobInvalid.WithLabelValues(sj.Namespace, sj.Name).Set(0)
		msg := obs.jobsErr.Error() + "; no Jobs are created until the Jobs can be counted"
		if !conditionIs(sj.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonJobListError, msg) {
			r.recorder.Eventf(&sj, nil, corev1.EventTypeWarning, ReasonJobListError, "Observe", "%s", obs.jobsErr.Error())
		}
		r.setCondition(&sj, status, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonJobListError, msg)
		status.LastDecision = &v1alpha1.Decision{Time: metav1.NewTime(r.Clock.Now()), Reason: "no Jobs: " + apilimit.Truncate(obs.jobsErr.Error(), 500) + " (retrying with back-off)"}
		r.setCondition(&sj, status, v1alpha1.ConditionActive, metav1.ConditionUnknown, ReasonJobListError, "activity is unknown until the Jobs can be counted")
	default:
		r.Metrics.ScaledJobInvalid.WithLabelValues(sj.Namespace, sj.Name).Set(0)
		runs := r.applyRuns(ctx, &sj, status, &obs)
		decision = Decide(r.inputs(&sj, obs, ev.Limits))
		if wr := ev.Reason(windows); wr != "" {
			decision.Reason = wr + "; " + decision.Reason
		}
		bo := FailingJobsBackoff(BackoffInputs{Outcomes: obs.outcomes, Now: r.Clock.Now(),
			Unfinished: obs.running})
		r.Metrics.FailingBackoff.WithLabelValues(sj.Namespace, sj.Name).Set(boolFloat(bo.Active))
		if bo.Active && decision.Create > bo.Allowed {
			decision.Create = bo.Allowed
			decision.Reason += "; " + ReasonFailingJobsBackoff + ": " + bo.Explain()
			if !bo.RetryAt.IsZero() {
				retryAt = bo.RetryAt
			}
		}
		wanted := decision.Create
		if decision.Create > r.MaxCreatesPerTick {
			decision.Create = r.MaxCreatesPerTick
			decision.Reason += fmt.Sprintf("; at most %d per tick (--max-creates-per-tick), the rest follows at once", r.MaxCreatesPerTick)
		}
		log.V(1).Info("Decided", "labelled", obs.listed, "owned", len(obs.jobs), "unseen", obs.unseen, "running", obs.running, "pending", obs.pending, "create", decision.Create, "reason", decision.Reason)
		r.Metrics.DecisionJobs.WithLabelValues(sj.Namespace, sj.Name).Set(float64(decision.Create))
		now := metav1.NewTime(r.Clock.Now())
		if decision.Active {
			status.LastActiveTime = &now
		}
		if paused {
			decision.Reason = "paused by annotation " + v1alpha1.AnnotationPaused + "; would have: " + decision.Reason
			decision.Create = 0
		}

		// 3. Act: create the Jobs the decision asks for.
		var runAnnotations map[string]string
		if runs != nil {
			runAnnotations = runs.annotations
		}
		created, err := r.createJobs(ctx, &sj, decision.Create, runAnnotations)
		countRuns(status, runs, created)
		actErr = errors.Join(actErr, err)
		if decision.Create > 0 {
			status.LastDispatchTime = &now
			status.Active += int32(created)
			status.Pending += int32(created)
		}
		status.LastDecision = &v1alpha1.Decision{Time: now, JobsCreated: int32(created), Reason: decision.Reason}
		switch {
		case err != nil:
			r.setCondition(&sj, status, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonJobCreateFailed, apilimit.Truncate(err.Error(), 1000))
		case bo.Active:
			msg := "creation backs off because Jobs keep failing: " + bo.Explain()
			if !conditionHasReason(sj.Status.Conditions, v1alpha1.ConditionReady, ReasonFailingJobsBackoff) {
				r.recorder.Eventf(&sj, nil, corev1.EventTypeWarning, ReasonFailingJobsBackoff, "CreateJobs", "%s", msg)
				log.Info("Jobs keep failing: creation backs off", "consecutiveFailures", bo.Consecutive)
			}
			r.setCondition(&sj, status, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonFailingJobsBackoff, msg)
		case obs.err != nil:
			msg := obs.err.Error() + "; " + PartialRule(Calculation(sj.Spec.ScalersCalculation()))
			if !conditionIs(sj.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonTriggerError, msg) {
				r.recorder.Eventf(&sj, nil, corev1.EventTypeWarning, ReasonTriggerError, "Observe", "%s", obs.err.Error())
			}
			r.setCondition(&sj, status, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonTriggerError, msg)
		default:
			r.setCondition(&sj, status, v1alpha1.ConditionReady, metav1.ConditionTrue, "TriggersHealthy", "all triggers read and Jobs counted")
		}
		moreWanted = err == nil && wanted > created && created == decision.Create && !paused
		r.setActive(&sj, status, decision, paused)
	}

	// Housekeeping that is safe on a partial observation: it needs only the Job list. History deletes finished Jobs.
	// Rollout immediate deletes Jobs of older generations, but never for a ScaledJob whose trigger configuration is
	// invalid: a bad spec must not take running work down with it.
	if obs.jobs != nil {
		remaining := obs.jobs
		if obs.invalid == nil && obs.err == nil {
			var err error
			if remaining, err = r.rollout(ctx, &sj, obs.jobs); err != nil {
				actErr = errors.Join(actErr, err)
			}
		}
		if err := r.pruneHistory(ctx, &sj, remaining); err != nil {
			actErr = errors.Join(actErr, err)
		}
	}

	result := "ok"
	switch {
	case paused:
		result = "paused"
	case obs.err != nil || obs.invalid != nil || actErr != nil:
		result = "error"
	}
	r.Metrics.TickDuration.WithLabelValues(result).Observe(r.Clock.Since(start).Seconds())
	err := r.writeStatus(ctx, &sj, status)
	r.Metrics.Ticks.WithLabelValues(sj.Namespace, sj.Name).Inc() // after the status write, which a reader then sees
	if err != nil {
		if apierrors.IsConflict(err) {
			// The ScaledJob changed while this tick ran (an edit, a pause): tick again on the new version.
			return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
		}
		return ctrl.Result{}, err
	}
	log.V(1).Info("Tick done", "requeueAfter", poll, "err", obs.err)
	// More Jobs wanted than one tick may create: go on at once (through the queue, so other ScaledJobs get their
	// turn). Transient read failures requeue with the controller's back-off; refused creates (quota, admission)
	// and everything else wait for the next poll.
	switch {
	case moreWanted:
		return ctrl.Result{Requeue: true}, nil
	case obs.err != nil:
		return ctrl.Result{}, obs.err
	case actErr != nil:
		log.V(1).Info("Tick finished with errors", "err", actErr)
	}
	r.due.Store(keyOf(&sj), r.Clock.Now().Add(poll))
	// The poller wakes the ScaledJob after every reading; this requeue only catches a poller that is stuck (its
	// reading then turns stale after 2 x pollingInterval and is reported).
	safety := 2*poll + time.Second
	if n := ev.Next; n != nil {
		// Apply a window's opening or closing when it happens, not up to a poll later.
		if wait := n.At.Sub(r.Clock.Now()) + 100*time.Millisecond; wait < safety {
			safety = max(wait, 100*time.Millisecond)
		}
	}
	if !retryAt.IsZero() {
		if wait := retryAt.Sub(r.Clock.Now()); wait < safety {
			return ctrl.Result{RequeueAfter: max(wait, 100*time.Millisecond)}, nil
		}
	}
	return ctrl.Result{RequeueAfter: safety}, nil
}

// observe reads the Jobs, their pods and every trigger's backlog. It never returns partial counts as complete: any
// failed read is in obs.err (or obs.invalid for configuration errors).
func (r *Reconciler) observe(ctx context.Context, sj *v1alpha1.ScaledJob) observation {
	obs := r.observeJobs(ctx, sj)
	if obs.jobsErr != nil {
		return obs
	}

	// Then the triggers' latest reading. A reading older than 2 x pollingInterval counts as failed for every
	// trigger. Jobs that finished after the reading are decided on as the reading saw them: running.
	res, ok := r.pollers.result(keyOf(sj))
	if !ok || res.generation != sj.Generation {
		obs.waiting = true
		return obs
	}
	obs.finishedAfterReading = r.pollers.FinishedAfter(keyOf(sj), res.readAt)
	err := res.setupErr
	if err == nil {
		poll := time.Duration(sj.Spec.PollingIntervalSeconds()) * time.Second
		if age := r.Clock.Since(res.readAt); age > 2*poll {
			stale := fmt.Errorf("the last reading is %s old (more than 2 x pollingInterval)", age.Round(time.Second))
			for i := range res.triggers {
				if res.triggers[i].err == nil {
					res.triggers[i] = triggerResult{err: stale}
				}
			}
		}
		r.readTriggers(sj, res.triggers, &obs)
		return obs
	}
	if sources.IsConfigError(err) {
		obs.invalid = err
	} else {
		obs.err = err
		for i, t := range sj.Spec.Triggers {
			obs.failing = append(obs.failing, t.EffectiveName(i))
		}
	}
	obs.statuses = r.failedStatuses(sj, err)
	return obs
}

// readTriggers turns the poller's per-trigger results into the observation; the first error (in spec order)
// becomes obs.err or obs.invalid.
func (r *Reconciler) readTriggers(sj *v1alpha1.ScaledJob, results []triggerResult, obs *observation) {
	obs.statuses = make([]v1alpha1.TriggerStatus, len(results))
	for i, res := range results {
		t := sj.Spec.Triggers[i]
		label := t.EffectiveName(i)
		st := v1alpha1.TriggerStatus{Name: label, Type: t.Type}
		if res.err != nil {
			r.Metrics.TriggerErrors.WithLabelValues(sj.Namespace, sj.Name, label, t.Type).Inc()
			te := &triggerError{index: i, name: label, err: res.err}
			st.LastError = apilimit.Truncate(res.err.Error(), 500)
			if sources.IsConfigError(res.err) {
				if obs.invalid == nil {
					obs.invalid = te
				}
			} else {
				obs.failing = append(obs.failing, label)
				if obs.err == nil {
					obs.err = te
				}
			}
			// Keep the previous reading visible, marked with the error.
			if prev := previousTrigger(sj, label); prev != nil {
				st.Backlog, st.Target, st.SampledAt, st.Active = prev.Backlog, prev.Target, prev.SampledAt, prev.Active
			}
			obs.statuses[i] = st
			continue
		}
		sampled := metav1.NewTime(res.b.SampledAt)
		st.Backlog, st.Target, st.Active, st.SampledAt = formatFloat(res.b.Value), formatFloat(res.b.Target), res.b.Active, &sampled
		obs.statuses[i] = st
		r.Metrics.TriggerBacklog.WithLabelValues(sj.Namespace, sj.Name, label, t.Type).Set(res.b.Value)
		r.Metrics.TriggerActive.WithLabelValues(sj.Namespace, sj.Name, label, t.Type).Set(boolFloat(res.b.Active))
		r.Metrics.TriggerErrors.WithLabelValues(sj.Namespace, sj.Name, label, t.Type).Add(0) // exported from 0, so rate() sees the first error
		if res.b.Occurrence != nil {
			if obs.occurrences == nil {
				obs.occurrences = map[int]*sources.Occurrence{}
			}
			obs.occurrences[len(obs.readings)] = res.b.Occurrence
		}
		obs.readings = append(obs.readings, TriggerReading{Name: label, Backlog: res.b.Value, Target: res.b.Target, Active: res.b.Active})
	}
}

// failedStatuses marks the trigger that failed to configure, keeping the others' last readings.
func (r *Reconciler) failedStatuses(sj *v1alpha1.ScaledJob, err error) []v1alpha1.TriggerStatus {
	var te *triggerError
	idx := -1
	if errors.As(err, &te) {
		idx = te.index
	}
	out := make([]v1alpha1.TriggerStatus, len(sj.Spec.Triggers))
	for i, t := range sj.Spec.Triggers {
		label := t.EffectiveName(i)
		out[i] = v1alpha1.TriggerStatus{Name: label, Type: t.Type}
		if prev := previousTrigger(sj, label); prev != nil {
			out[i] = *prev.DeepCopy()
		}
		if i == idx {
			out[i].LastError = apilimit.Truncate(describe(err, false), 500)
			r.Metrics.TriggerErrors.WithLabelValues(sj.Namespace, sj.Name, label, t.Type).Inc()
		}
	}
	return out
}

func previousTrigger(sj *v1alpha1.ScaledJob, name string) *v1alpha1.TriggerStatus {
	for i := range sj.Status.Triggers {
		if sj.Status.Triggers[i].Name == name {
			return &sj.Status.Triggers[i]
		}
	}
	return nil
}

// inputs maps the spec and the observation onto the decision's named inputs.
func (r *Reconciler) inputs(sj *v1alpha1.ScaledJob, obs observation, limits capacity.Limits) Inputs {
	ss := sj.Spec.ScalingStrategy
	return Inputs{
		Triggers:        obs.readings,
		FailedTriggers:  obs.failing,
		Calculation:     Calculation(sj.Spec.ScalersCalculation()),
		Running:         obs.running + obs.finishedAfterReading,
		Pending:         obs.pending,
		MinReplicaCount: limits.Min,
		MaxReplicaCount: limits.Max,
		Settings: StrategySettings{
			Strategy:                Strategy(sj.Spec.ScalingStrategyName()),
			CustomDeduction:         ss.CustomScalingQueueLengthDeduction,
			CustomRunningPercentage: ss.CustomScalingRunningJobPercentage,
		},
	}
}

// forget drops everything kept about a deleted ScaledJob.
func (r *Reconciler) forget(namespace, name string) {
	key := namespace + "/" + name
	r.Metrics.forget(namespace, name)
	r.due.Delete(key)
	r.pollers.Stop(key)
	r.messages.Stop(key)
	r.sourceCache.forget(key)
	r.expectations.forget(key)
}

// ownedBy keeps the Jobs whose controller is sj (a Job that merely carries the label is not ours to count or
// delete).
func ownedBy(jobs []batchv1.Job, sj *v1alpha1.ScaledJob) []batchv1.Job {
	out := make([]batchv1.Job, 0, len(jobs))
	for _, j := range jobs {
		if ref := metav1.GetControllerOf(&j); ref != nil && ref.UID == sj.UID {
			out = append(out, j)
		}
	}
	return out
}

// CurrentOutcomes are the finished Jobs among jobs (the ScaledJob's own) of sj's current generation, as the
// failing-Jobs back-off takes them: only the current template's outcomes count, so an edit that fixes the template
// ends the back-off at once.
func CurrentOutcomes(sj *v1alpha1.ScaledJob, jobs []batchv1.Job) []JobOutcome {
	generation := strconv.FormatInt(sj.Generation, 10)
	var out []JobOutcome
	for i := range jobs {
		if jobs[i].Annotations[v1alpha1.AnnotationGeneration] != generation {
			continue
		}
		for _, c := range jobs[i].Status.Conditions {
			if c.Status != corev1.ConditionTrue {
				continue
			}
			switch c.Type {
			case batchv1.JobComplete:
				out = append(out, JobOutcome{At: c.LastTransitionTime.Time})
			case batchv1.JobFailed:
				out = append(out, JobOutcome{At: c.LastTransitionTime.Time, Failed: true, Reason: c.Reason + ": " + c.Message})
			}
		}
	}
	return out
}

// keyOf is the key of a ScaledJob in the per-ScaledJob stores.
func keyOf(sj *v1alpha1.ScaledJob) string { return sj.Namespace + "/" + sj.Name }

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// observeJobs counts the ScaledJob's Jobs (the cache plus its own creations the cache does not show yet) and
// their pods; a failed list is obs.jobsErr.
func (r *Reconciler) observeJobs(ctx context.Context, sj *v1alpha1.ScaledJob) observation {
	var obs observation
	// Jobs first: if they cannot be read there is no decision to make, and the trigger reads can be skipped.
	var jobs batchv1.JobList
	// The lists share the cache's objects (no deep copy on every tick): nothing here or in act.go modifies a listed
	// Job or pod; deletes and patches build their own objects or send only the name.
	if err := r.Client.List(ctx, &jobs, client.InNamespace(sj.Namespace), index.Of(sj.Name), client.UnsafeDisableDeepCopy); err != nil {
		obs.err = fmt.Errorf("listing jobs of %s/%s: %w", sj.Namespace, sj.Name, err)
		obs.jobsErr = obs.err
		return obs
	}
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(sj.Namespace), index.Of(sj.Name), client.UnsafeDisableDeepCopy); err != nil {
		obs.err = fmt.Errorf("listing pods of %s/%s: %w", sj.Namespace, sj.Name, err)
		obs.jobsErr = obs.err
		obs.jobs = nil
		return obs
	}
	obs.jobs = ownedBy(jobs.Items, sj)
	obs.listed = len(jobs.Items)
	podsByJob := map[string][]corev1.Pod{}
	for _, p := range pods.Items {
		if name := JobNameOf(&p); name != "" {
			podsByJob[name] = append(podsByJob[name], p)
		}
	}
	obs.podsByJob = podsByJob
	obs.running, obs.pending = Count(obs.jobs, podsByJob, sj.Spec.ScalingStrategy.PendingPodConditions)
	seen := make(map[string]bool, len(obs.jobs))
	for i := range obs.jobs {
		seen[obs.jobs[i].Name] = true
		for _, c := range obs.jobs[i].Status.Conditions {
			if c.Status != corev1.ConditionTrue {
				continue
			}
			switch c.Type {
			case batchv1.JobComplete:
				obs.succeeded++
			case batchv1.JobFailed:
				obs.failed++
			}
		}
	}
	obs.outcomes = CurrentOutcomes(sj, obs.jobs)
	// Jobs we created that the cache does not show yet are running and pending: they exist, nothing runs them yet.
	obs.unseen = int64(len(r.expectations.unseen(keyOf(sj), seen, r.Clock.Now())))
	obs.running += obs.unseen
	obs.pending += obs.unseen

	return obs
}

// finishResult is the jobs_finished_total result of a finished Job: succeeded when Complete, else failed.
func finishResult(j *batchv1.Job) string {
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
			return "succeeded"
		}
	}
	return "failed"
}
