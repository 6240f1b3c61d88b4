package message

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/dispatch/internal/apilimit"
	"github.com/kubedispatch/kubedispatch/dispatch/internal/index"
	"github.com/kubedispatch/kubedispatch/jobtemplate"
	"github.com/kubedispatch/kubedispatch/sources"
)

// Event reasons on the ScaledJob.
const (
	ReasonDeadLettered  = "MessageDeadLettered"
	ReasonReceiveFailed = "MessageReceiveFailed"
)

// Defaults.
const (
	// DefaultReceiveWait is the long-poll wait of one Receive (SQS allows at most 20 s).
	DefaultReceiveWait = 20 * time.Second
	// exhaustedReleaseDelay: with no dead-letter destination, a message whose attempts are all used is handed back
	// to the queue (for its own redrive policy) this long, so it does not come straight back.
	exhaustedReleaseDelay = 10 * time.Minute
	// retryReleaseDelay: a message whose Job could not be created for a transient reason (quota, API errors) is
	// handed back this long.
	retryReleaseDelay = 5 * time.Second
	// cacheGrace is how long a created Job may be missing from the cache before it counts as deleted.
	cacheGrace = 30 * time.Second
	// keeperTick is how often held messages are checked (their Jobs' outcomes, lease renewals).
	keeperTick = time.Second
)

// Config wires the loops.
type Config struct {
	// Client reads Jobs from the informer cache and writes Jobs, Secrets and Job annotations.
	Client client.Client
	// APIReader reads a Job straight from the API server when a create says it exists already.
	APIReader client.Reader
	Clock     clock.Clock
	Recorder  events.EventRecorder
	Metrics   *Metrics
	// NewReceiver builds a ScaledJob's receiver, its credentials resolved.
	NewReceiver func(ctx context.Context, sj *v1alpha1.ScaledJob) (sources.Receiver, error)
	// Fingerprint resolves a ScaledJob's receiver configuration (credentials included) and returns a digest of
	// it, or the error resolving it gives (such as a ClusterTriggerAuthentication that no longer allows the
	// namespace). With it, Rebuild ends the receiver in use only when the digest changed or resolving fails, so an
	// edit that changes nothing for this ScaledJob does not cut its long poll short. Nil: Rebuild always rebuilds.
	Fingerprint func(ctx context.Context, sj *v1alpha1.ScaledJob) (string, error)
	// Wake gets the ScaledJob (at most once per keeper tick) when its message status changed.
	Wake chan<- event.GenericEvent
	// ReceiveWait is the long-poll wait; DefaultReceiveWait when zero.
	ReceiveWait time.Duration
	// Log is the loops' logger (each loop adds the ScaledJob).
	Log logr.Logger
	// SecretRefresh is the longest a receiver (its credentials) is used before being built again; 0: never.
	SecretRefresh time.Duration
	// OnJobCreated is called for each Job created (the dispatcher's Job metrics).
	OnJobCreated func(namespace, scaledJob string)
	// MaxReplicas is the effective maxReplicaCount of a ScaledJob at a time (its capacity windows); nil: the
	// spec's maxReplicaCount.
	MaxReplicas func(sj *v1alpha1.ScaledJob, now time.Time) int32
	// ShardLabelKeys are set on each Job's pods from the ScaledJob's labels (jobtemplate.Build).
	ShardLabelKeys []string
}

// Loops runs one message loop per message-mode ScaledJob, on the leader only (a manager Runnable).
type Loops struct {
	cfg     Config
	mu      sync.Mutex
	base    context.Context
	running map[string]*loop
}

// NewLoops returns the loops; they start with the manager.
func NewLoops(cfg Config) *Loops {
	if cfg.ReceiveWait <= 0 {
		cfg.ReceiveWait = DefaultReceiveWait
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	cfg.Recorder = apilimit.Recorder(cfg.Recorder)
	return &Loops{cfg: cfg, running: map[string]*loop{}}
}

// Start runs until ctx ends; loops started by Ensure live under it.
func (ls *Loops) Start(ctx context.Context) error {
	ls.mu.Lock()
	ls.base = logr.NewContext(ctx, ls.cfg.Log)
	ls.mu.Unlock()
	<-ctx.Done()
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for k, l := range ls.running {
		l.cancel()
		delete(ls.running, k)
	}
	return nil
}

// NeedLeaderElection makes the loops leader-only: only the leader receives.
func (ls *Loops) NeedLeaderElection() bool { return true }

// Ensure starts the ScaledJob's loop, or hands it the new spec; a change of the trigger or dead-letter
// destination rebuilds the receiver (held messages' leases then lapse, and their redeliveries adopt their Jobs). It
// returns false before the loops run (before leadership).
func (ls *Loops) Ensure(sj *v1alpha1.ScaledJob) bool {
	key := sj.Namespace + "/" + sj.Name
	hash := receiverHash(sj)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.base == nil {
		return false
	}
	if l, ok := ls.running[key]; ok {
		if l.hash == hash {
			l.setSpec(sj)
			return true
		}
		l.cancel()
	}
	ctx, cancel := context.WithCancel(ls.base)
	l := &loop{cfg: &ls.cfg, nn: types.NamespacedName{Namespace: sj.Namespace, Name: sj.Name}, hash: hash, cancel: cancel,
		slot: make(chan struct{}, 1), settle: make(chan struct{}, 1), rebuilt: make(chan struct{}, 1), held: map[string]*held{}}
	if m := sj.Status.Messages; m != nil {
		l.totals = Totals{Acked: m.Acked, Released: m.Released, DeadLettered: m.DeadLettered, LeaseErrors: m.LeaseErrors, LastDeadLetter: m.LastDeadLetter}
	}
	l.setSpec(sj)
	ls.running[key] = l
	go l.run(ctx)
	return true
}

// Stop ends a ScaledJob's loop (spec invalid, mode changed, deleted). Held messages are not released: their leases
// lapse and the queue delivers them again.
func (ls *Loops) Stop(key string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if l, ok := ls.running[key]; ok {
		l.cancel()
		delete(ls.running, key)
		ls.cfg.Metrics.forget(l.nn.Namespace, l.nn.Name)
	}
}

// Rebuild makes the ScaledJob's loop build its receiver again at once, because a TriggerAuthentication or
// ClusterTriggerAuthentication it uses (or its namespace's labels) changed: the credentials are resolved again and
// a ClusterTriggerAuthentication's allowedNamespaces checked again, and no message is received with the old client
// after that. Held messages stay held, as on any rebuild; while the new receiver cannot be built (credentials
// revoked) their leases are not renewed and they return to the queue. It reports whether the ScaledJob has a loop.
func (ls *Loops) Rebuild(key string) bool {
	ls.mu.Lock()
	l, ok := ls.running[key]
	ls.mu.Unlock()
	if ok {
		l.rebuildIfChanged()
	}
	return ok
}

// JobFinished nudges the ScaledJob's loop: one of its Jobs finished or was deleted.
func (ls *Loops) JobFinished(key string) {
	ls.mu.Lock()
	l, ok := ls.running[key]
	ls.mu.Unlock()
	if ok {
		l.nudgeSettle()
	}
}

// Snapshot is a loop's state for the ScaledJob's status.
type Snapshot struct {
	Totals
	Held       int32
	OldestHeld time.Time // enqueue time of the oldest held message; zero when none
	// ReceiveErr is the last receive or set-up failure, "" once a receive succeeded.
	ReceiveErr string
	Running    bool
}

// Totals are counts kept in status across restarts.
type Totals struct {
	Acked, Released, DeadLettered, LeaseErrors int64
	LastDeadLetter                             string
}

// Snapshot returns the loop's state (Running false when there is none).
func (ls *Loops) Snapshot(key string) Snapshot {
	ls.mu.Lock()
	l, ok := ls.running[key]
	ls.mu.Unlock()
	if !ok {
		return Snapshot{}
	}
	return l.snapshot()
}

// receiverHash identifies what the receiver is built from: the trigger and the dead-letter destination.
func receiverHash(sj *v1alpha1.ScaledJob) string {
	var dl *v1alpha1.DeadLetter
	if sj.Spec.Dispatch != nil {
		dl = sj.Spec.Dispatch.DeadLetter
	}
	b, _ := json.Marshal(struct {
		T  []v1alpha1.ScaleTrigger
		DL *v1alpha1.DeadLetter
		E  string
	}{sj.Spec.Triggers, dl, sj.Spec.EnvSourceContainerName})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// held is one message whose lease the loop holds.
type held struct {
	msg     sources.Message
	key     string // jobtemplate.MessageKey
	job     string // its Job, "" until created or adopted
	attempt int32
	since   time.Time // when the Job was created or adopted (cache grace)
	secret  bool      // the payload Secret still has to be created
	pending *Action   // a settle that failed and is retried
	// pendingRelease is the release delay the failed settle asked for, used again by its retry.
	pendingRelease time.Duration
	// settling: a settle call is in flight; a delivery received meanwhile is a new one (Service Bus redelivers an
	// abandoned message at once) and waits in redelivery until the settle is done.
	settling   bool
	redelivery *sources.Message
}

type loop struct {
	cfg     *Config
	nn      types.NamespacedName
	hash    string
	cancel  context.CancelFunc
	slot    chan struct{} // a slot may have freed: receive again
	settle  chan struct{} // a Job finished: check held messages now
	rebuilt chan struct{} // build the receiver again now, without waiting out a back-off
	// refusals counts the receivers in a row that the queue refused the credentials of (run's goroutine only).
	refusals int
	// built is the Fingerprint of the configuration the receiver in use was built with ("" when unknown), and
	// runCtx the loop's context, for the check Rebuild starts; checking is set while that check runs.
	built    string
	runCtx   context.Context
	checking atomic.Bool
	recheck  atomic.Bool

	admits sync.WaitGroup // messages being turned into Jobs

	mu         sync.Mutex
	sj         *v1alpha1.ScaledJob
	held       map[string]*held
	totals     Totals
	receiveErr string
	buildErr   bool // receiveErr is a failed build of the receiver, cleared by the next successful build
	dirty      bool
	// stopServe ends the receiver in use (nil while none is): run then builds a new one.
	stopServe context.CancelFunc
}

func (l *loop) setSpec(sj *v1alpha1.ScaledJob) {
	l.mu.Lock()
	l.sj = sj.DeepCopy()
	l.mu.Unlock()
	l.nudgeSlot()
}

func (l *loop) spec() *v1alpha1.ScaledJob {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sj
}

func (l *loop) nudgeSlot() {
	select {
	case l.slot <- struct{}{}:
	default:
	}
}

// rebuild ends the receiver in use, or the back-off after a failed build, so that run builds a receiver again. The
// request is queued before the receiver is ended, so the build that follows consumes it (no second build).
func (l *loop) rebuild() {
	select {
	case l.rebuilt <- struct{}{}:
	default:
	}
	l.mu.Lock()
	stop := l.stopServe
	l.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// rebuildIfChanged rebuilds when the receiver's configuration changed or no longer resolves (Config.Fingerprint),
// checked in its own goroutine (it reads Secrets) so that the caller, an event handler, does not wait. Asks that
// come while a check runs are served by another check after it (recheck), never lost.
func (l *loop) rebuildIfChanged() {
	l.mu.Lock()
	ctx, built := l.runCtx, l.built
	l.mu.Unlock()
	if l.cfg.Fingerprint == nil || ctx == nil || built == "" {
		l.rebuild()
		return
	}
	l.recheck.Store(true)
	if !l.checking.CompareAndSwap(false, true) {
		return // the running check sees recheck
	}
	go func() {
		for {
			for l.recheck.Swap(false) && ctx.Err() == nil {
				fp, err := l.cfg.Fingerprint(ctx, l.spec())
				l.mu.Lock()
				changed := err != nil || fp != l.built
				l.mu.Unlock()
				if changed {
					l.rebuild()
				}
			}
			l.checking.Store(false)
			if !l.recheck.Load() || !l.checking.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}

func (l *loop) nudgeSettle() {
	select {
	case l.settle <- struct{}{}:
	default:
	}
}

func (l *loop) snapshot() Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := Snapshot{Totals: l.totals, Held: int32(len(l.held)), ReceiveErr: l.receiveErr, Running: true}
	for _, h := range l.held {
		if t := h.msg.EnqueuedAt; !t.IsZero() && (s.OldestHeld.IsZero() || t.Before(s.OldestHeld)) {
			s.OldestHeld = t
		}
	}
	return s
}

func (l *loop) markDirty() {
	l.mu.Lock()
	l.dirty = true
	l.mu.Unlock()
}

func (l *loop) labels() []string { return []string{l.nn.Namespace, l.nn.Name} }

// run builds the receiver (retrying with back-off) and then receives until ctx ends, with the keeper beside it.
func (l *loop) run(ctx context.Context) {
	log := logr.FromContextOrDiscard(ctx).WithValues("scaledJob", l.nn.String())
	ctx = logr.NewContext(ctx, log)
	l.mu.Lock()
	l.runCtx = ctx
	l.mu.Unlock()
	// Counters exported from 0, so rate() sees the first increment.
	l.cfg.Metrics.LeaseErrors.WithLabelValues(l.labels()...).Add(0)
	for _, action := range []string{"received", "acked", "released", "dead_lettered"} {
		l.cfg.Metrics.Messages.WithLabelValues(l.nn.Namespace, l.nn.Name, action).Add(0)
	}
	for failures := 0; ctx.Err() == nil; {
		// A rebuild asked for before this build is served by it.
		select {
		case <-l.rebuilt:
		default:
		}
		built := ""
		if l.cfg.Fingerprint != nil {
			built, _ = l.cfg.Fingerprint(ctx, l.spec()) // a failure shows in NewReceiver's error just below
		}
		l.mu.Lock()
		l.built = built
		l.mu.Unlock()
		recv, err := l.cfg.NewReceiver(ctx, l.spec())
		if err != nil {
			l.setReceiveErr(fmt.Errorf("building the receiver: %w", err))
			l.mu.Lock()
			l.buildErr = true
			l.mu.Unlock()
			// No keeper runs without a receiver: wake the reconciler here, so status shows the failure (such as a
			// ClusterTriggerAuthentication that no longer allows the namespace) at once.
			if !l.wake(ctx) {
				return
			}
			if !l.sleepOrRebuild(ctx, backoff(failures)) {
				return
			}
			failures++
			continue
		}
		failures = 0
		// The build works again (credentials allowed again, a Secret restored): status stops showing its failure
		// now, not only when the first long poll returns. A receive error stays until a receive succeeds.
		l.mu.Lock()
		if l.buildErr {
			l.buildErr, l.receiveErr, l.dirty = false, "", true
		}
		l.mu.Unlock()
		if !l.wake(ctx) {
			recv.Close()
			return
		}
		if !l.serve(ctx, recv) {
			continue
		}
		// The queue refused the credentials: status says so now, and the receiver is built again after a back-off,
		// not at once in a loop (a rebuild asked for meanwhile, such as an edited TriggerAuthentication, cuts it
		// short). The back-off grows with refusals in a row and starts again after a receive that worked.
		if !l.wake(ctx) || !l.sleepOrRebuild(ctx, backoff(l.refusals)) {
			return
		}
		l.refusals++
	}
}

// serve receives and keeps with recv until ctx ends, the queue refuses the credentials, or SecretRefresh passes:
// then run builds a new receiver (credentials read again). Held messages stay held: their handles do not depend on
// the client. It reports whether it ended because the queue refused the credentials.
func (l *loop) serve(ctx context.Context, recv sources.Receiver) (refused bool) {
	defer recv.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l.mu.Lock()
	l.stopServe = cancel
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.stopServe = nil
		l.mu.Unlock()
	}()
	select {
	case <-l.rebuilt: // asked for while this receiver was being built: it may hold the old credentials
		return false
	default:
	}
	if l.cfg.SecretRefresh > 0 {
		t := l.cfg.Clock.NewTimer(l.cfg.SecretRefresh)
		go func() {
			defer t.Stop()
			select {
			case <-t.C():
				cancel()
			case <-sctx.Done():
			}
		}()
	}
	done := make(chan struct{})
	go func() { defer close(done); l.keep(sctx, recv) }()
	refused = l.receive(sctx, recv)
	cancel()
	<-done
	l.admits.Wait()
	return refused
}

func (l *loop) setReceiveErr(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	l.buildErr = false
	if l.receiveErr != msg {
		l.receiveErr = msg
		l.dirty = true
	}
}

// sleepOrRebuild waits d, or until a rebuild is asked for, and reports whether ctx is still alive.
func (l *loop) sleepOrRebuild(ctx context.Context, d time.Duration) bool {
	t := l.cfg.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
	case <-l.rebuilt:
		// Keep the request for run, which drains it just before building.
		select {
		case l.rebuilt <- struct{}{}:
		default:
		}
	}
	return true
}

// sleep waits d and reports whether ctx is still alive.
func (l *loop) sleep(ctx context.Context, d time.Duration) bool {
	t := l.cfg.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// backoff is the wait after the n-th consecutive failure (from 0): 1 s doubling to 30 s.
func backoff(n int) time.Duration {
	d := time.Second
	for i := 0; i < n && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}

// receive long-polls into the free slots until ctx ends, or until the queue refuses the credentials (it then
// returns true, and run builds the receiver again after a back-off).
func (l *loop) receive(ctx context.Context, recv sources.Receiver) bool {
	failures := 0
	for ctx.Err() == nil {
		sj := l.spec()
		free := 0
		if !v1alpha1.IsPaused(sj) {
			var err error
			if free, err = l.freeSlots(ctx, sj); err != nil {
				l.setReceiveErr(err)
			}
		}
		if free == 0 {
			t := l.cfg.Clock.NewTimer(keeperTick)
			select {
			case <-ctx.Done():
			case <-l.slot:
			case <-t.C():
			}
			t.Stop()
			continue
		}
		msgs, err := recv.Receive(ctx, free, l.cfg.ReceiveWait, l.cfg.Clock.Now())
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			l.setReceiveErr(fmt.Errorf("receiving messages: %w", err))
			if errors.Is(err, sources.ErrUnauthorized) {
				return true // read the credentials again (a rotated Secret)
			}
			if !l.sleep(ctx, backoff(failures)) {
				return false
			}
			failures++
			continue
		}
		failures, l.refusals = 0, 0
		l.setReceiveErr(nil)
		// Each new message becomes its Job in parallel (a batch of 10 made one after the other would wait ten
		// create round trips); the next receive counts them as held already.
		for i := range msgs {
			if h, fresh := l.hold(msgs[i]); fresh {
				l.admits.Add(1)
				go func() {
					defer l.admits.Done()
					l.admit(ctx, sj, recv, h)
				}()
			}
		}
	}
	return false
}

// freeSlots counts the free slots from the cache's Jobs of the ScaledJob and the held messages.
func (l *loop) freeSlots(ctx context.Context, sj *v1alpha1.ScaledJob) (int, error) {
	var jobs batchv1.JobList
	if err := l.cfg.Client.List(ctx, &jobs, client.InNamespace(sj.Namespace), index.Of(sj.Name), client.UnsafeDisableDeepCopy); err != nil {
		return 0, fmt.Errorf("listing jobs of %s: %w", l.nn, err)
	}
	unfinished := map[string]bool{}
	for i := range jobs.Items {
		if st, _ := StateOf(&jobs.Items[i]); st == Unfinished {
			unfinished[jobs.Items[i].Name] = true
		}
	}
	l.mu.Lock()
	heldJobs := make([]string, 0, len(l.held))
	for _, h := range l.held {
		heldJobs = append(heldJobs, h.job)
	}
	l.mu.Unlock()
	maxReplicas := sj.Spec.MaxReplicas()
	if l.cfg.MaxReplicas != nil {
		maxReplicas = l.cfg.MaxReplicas(sj, l.cfg.Clock.Now())
	}
	return FreeSlots(maxReplicas, unfinished, heldJobs), nil
}

// hold records a received message as held; a redelivery of one held already only refreshes its receipt handle
// (always the latest) and reports false. A delivery of a message being settled is kept for when the settle is done
// (see finishSettle), and also reports false.
func (l *loop) hold(m sources.Message) (*held, bool) {
	key := jobtemplate.MessageKey(m.Queue, m.ID)
	l.mu.Lock()
	defer l.mu.Unlock()
	if h, ok := l.held[key]; ok {
		if h.settling {
			h.redelivery = &m
			return h, false
		}
		h.msg.Handle, h.msg.LeaseUntil = m.Handle, m.LeaseUntil
		return h, false
	}
	h := &held{msg: m, key: key}
	l.held[key] = h
	l.dirty = true
	return h, true
}

// admit decides a newly held message by its Jobs: create the next attempt, adopt, ack or dead-letter.
func (l *loop) admit(ctx context.Context, sj *v1alpha1.ScaledJob, recv sources.Receiver, h *held) {
	key := h.key
	l.cfg.Metrics.Messages.WithLabelValues(l.nn.Namespace, l.nn.Name, "received").Inc()
	l.cfg.Metrics.Held.WithLabelValues(l.labels()...).Set(float64(l.heldCount()))
	if v1alpha1.IsPaused(l.spec()) {
		// Paused while this long poll was open: hand it back untouched.
		l.settleMessage(ctx, sj, recv, h, Action{Kind: Release, Reason: "the ScaledJob is paused"}, 0)
		return
	}

	var jobs batchv1.JobList
	if err := l.cfg.Client.List(ctx, &jobs, client.InNamespace(sj.Namespace),
		index.Of(sj.Name), client.MatchingLabels{v1alpha1.LabelMessage: key}); err != nil {
		// Without its Jobs the attempt is unknown: hand the message back rather than guess.
		l.apply(ctx, sj, recv, h, Action{Kind: Release, Reason: err.Error()}, retryReleaseDelay)
		return
	}
	l.apply(ctx, sj, recv, h, Next(Attempts(jobs.Items), sj.Spec.MaxDeliveries()), 0)
}

func (l *loop) heldCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.held)
}

// apply carries out an action for a held message. releaseDelay applies to Release.
func (l *loop) apply(ctx context.Context, sj *v1alpha1.ScaledJob, recv sources.Receiver, h *held, act Action, releaseDelay time.Duration) {
	switch act.Kind {
	case Create:
		l.create(ctx, sj, recv, h, act.Attempt)
	case Adopt:
		l.mu.Lock()
		h.job, h.attempt, h.since = act.Job, act.Attempt, l.cfg.Clock.Now()
		h.secret = true // a Job adopted after a crash may lack its payload Secret
		l.mu.Unlock()
	default:
		l.settleMessage(ctx, sj, recv, h, act, releaseDelay)
	}
}

// create builds and creates the Job for attempt, then its payload Secret. A message that cannot become a Job is
// dead-lettered at once; a Job that exists already is adopted (or its outcome applied).
func (l *loop) create(ctx context.Context, sj *v1alpha1.ScaledJob, recv sources.Receiver, h *held, attempt int32) {
	log := logr.FromContextOrDiscard(ctx)
	info := jobtemplate.MessageInfo{ID: h.msg.ID, Queue: h.msg.Queue, Body: h.msg.Body, Attributes: h.msg.Attributes,
		EnqueuedAt: h.msg.EnqueuedAt, Attempt: attempt}
	job, secret, err := jobtemplate.BuildMessage(sj, info, l.cfg.ShardLabelKeys...)
	if err != nil {
		l.settleMessage(ctx, sj, recv, h, Action{Kind: DeadLetter, Attempt: attempt, Reason: "the message cannot become a Job: " + err.Error()}, 0)
		return
	}
	err = l.cfg.Client.Create(ctx, job)
	switch {
	case err == nil:
		now := l.cfg.Clock.Now()
		if !h.msg.EnqueuedAt.IsZero() {
			l.cfg.Metrics.DispatchLatency.WithLabelValues(l.labels()...).Observe(now.Sub(h.msg.EnqueuedAt).Seconds())
		}
		log.V(1).Info("Created Job for message", "job", job.Name, "messageId", h.msg.ID, "attempt", attempt)
		if l.cfg.OnJobCreated != nil {
			l.cfg.OnJobCreated(l.nn.Namespace, l.nn.Name)
		}
		l.mu.Lock()
		h.job, h.attempt, h.since, h.secret = job.Name, attempt, now, true
		l.mu.Unlock()
		l.ensureSecret(ctx, h, job, secret)
	case apierrors.IsAlreadyExists(err):
		var existing batchv1.Job
		if gerr := l.cfg.APIReader.Get(ctx, client.ObjectKeyFromObject(job), &existing); gerr != nil {
			l.apply(ctx, sj, recv, h, Action{Kind: Release, Reason: gerr.Error()}, retryReleaseDelay)
			return
		}
		if !metav1.IsControlledBy(&existing, sj) {
			l.settleMessage(ctx, sj, recv, h, Action{Kind: DeadLetter, Attempt: attempt, Reason: fmt.Sprintf(
				"the message's Job name %s is taken by a Job this ScaledJob does not own (two ScaledJobs whose names share a long prefix on one queue?)", existing.Name)}, 0)
			return
		}
		st, reason := StateOf(&existing)
		next := Next([]Attempt{{Number: attempt, Job: existing.Name, State: st, Reason: reason}}, sj.Spec.MaxDeliveries())
		l.apply(ctx, sj, recv, h, next, 0)
	case permanentCreateError(err):
		l.settleMessage(ctx, sj, recv, h, Action{Kind: DeadLetter, Attempt: attempt, Reason: "the API server refused the message's Job: " + err.Error()}, 0)
	default:
		// Quota, throttling, an unreachable API server: hand the message back for a later try.
		log.V(1).Info("Could not create the message's Job; releasing it", "messageId", h.msg.ID, "err", err)
		l.settleMessage(ctx, sj, recv, h, Action{Kind: Release, Attempt: attempt, Reason: err.Error()}, retryReleaseDelay)
	}
}

// permanentCreateError reports whether the API server refused the Job itself (invalid), as opposed to a refusal
// that may pass later: a quota, an admission policy or missing permissions (Forbidden), a terminating namespace,
// or a transient failure. Those hand the message back instead of dead-lettering it.
func permanentCreateError(err error) bool {
	return apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)
}

// ensureSecret creates the payload Secret owned by the Job (so it goes with it); a failure is retried by the keeper.
func (l *loop) ensureSecret(ctx context.Context, h *held, job *batchv1.Job, secret *corev1.Secret) {
	if secret == nil {
		return
	}
	secret.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(job, batchv1.SchemeGroupVersion.WithKind("Job"))}
	err := l.cfg.Client.Create(ctx, secret)
	if err == nil || apierrors.IsAlreadyExists(err) {
		l.mu.Lock()
		h.secret = false
		l.mu.Unlock()
		return
	}
	logr.FromContextOrDiscard(ctx).V(1).Info("Could not create the payload Secret; retrying", "job", job.Name, "err", err)
}

// keep checks the held messages every keeperTick (and when a Job finished): settles those whose Job finished,
// renews leases due, retries failed settles and missing Secrets, and wakes the reconciler on a change.
func (l *loop) keep(ctx context.Context, recv sources.Receiver) {
	for {
		t := l.cfg.Clock.NewTimer(keeperTick)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		case <-l.settle:
			t.Stop()
		}
		l.keepOnce(ctx, recv)
		l.cfg.Metrics.Held.WithLabelValues(l.labels()...).Set(float64(l.heldCount()))
		if !l.wake(ctx) {
			return
		}
	}
}

// wake sends the ScaledJob to the reconciler when its message status changed since the last wake, and reports
// whether ctx is still alive.
func (l *loop) wake(ctx context.Context) bool {
	l.mu.Lock()
	dirty := l.dirty
	l.dirty = false
	sj := l.sj
	l.mu.Unlock()
	if !dirty || l.cfg.Wake == nil {
		return true
	}
	select {
	case l.cfg.Wake <- event.GenericEvent{Object: &v1alpha1.ScaledJob{ObjectMeta: metav1.ObjectMeta{Namespace: sj.Namespace, Name: sj.Name}}}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (l *loop) keepOnce(ctx context.Context, recv sources.Receiver) {
	sj := l.spec()
	l.mu.Lock()
	hs := make([]*held, 0, len(l.held))
	for _, h := range l.held {
		hs = append(hs, h)
	}
	l.mu.Unlock()
	lease := recv.Lease()
	for _, h := range hs {
		if ctx.Err() != nil {
			return
		}
		l.mu.Lock()
		pending, pendingRelease, jobName, attempt, since, secret := h.pending, h.pendingRelease, h.job, h.attempt, h.since, h.secret
		l.mu.Unlock()
		if pending != nil {
			l.settleMessage(ctx, sj, recv, h, *pending, pendingRelease)
			if l.isHeld(h) {
				l.renew(ctx, recv, h, lease) // still failing: keep the lease while retrying
			}
			continue
		}
		if jobName == "" {
			continue // being created by the receive loop
		}
		var job batchv1.Job
		err := l.cfg.Client.Get(ctx, types.NamespacedName{Namespace: sj.Namespace, Name: jobName}, &job)
		switch {
		case apierrors.IsNotFound(err):
			if l.cfg.Clock.Since(since) > cacheGrace {
				// The Job was deleted under the message (by hand, a rollout): hand the message back for a new Job.
				l.settleMessage(ctx, sj, recv, h, Action{Kind: Release, Attempt: attempt, Job: jobName, Reason: "its Job was deleted"}, 0)
				continue
			}
		case err == nil:
			if secret {
				_, s, berr := jobtemplate.BuildMessage(sj, jobtemplate.MessageInfo{ID: h.msg.ID, Queue: h.msg.Queue, Body: h.msg.Body,
					Attributes: h.msg.Attributes, EnqueuedAt: h.msg.EnqueuedAt, Attempt: attempt})
				if berr == nil {
					s.Name = job.Name
					l.ensureSecret(ctx, h, &job, s)
				}
			}
			st, reason := StateOf(&job)
			if act := Settle(Attempt{Number: attempt, Job: jobName, State: st, Reason: reason}, sj.Spec.MaxDeliveries()); act.Kind != Adopt {
				l.settleMessage(ctx, sj, recv, h, act, pendingDelay(act))
				continue
			}
		}
		l.renew(ctx, recv, h, lease)
	}
}

// renew extends h's lease once less than two thirds of it remain (renewing at about a third of the lease).
func (l *loop) renew(ctx context.Context, recv sources.Receiver, h *held, lease time.Duration) {
	now := l.cfg.Clock.Now()
	l.mu.Lock()
	until := h.msg.LeaseUntil
	l.mu.Unlock()
	if until.After(now.Add(lease * 2 / 3)) {
		return
	}
	newUntil, err := recv.Extend(ctx, &h.msg, now)
	switch {
	case err == nil:
		l.mu.Lock()
		h.msg.LeaseUntil = newUntil
		l.mu.Unlock()
	case errors.Is(err, sources.ErrLeaseLost):
		// The queue will deliver it again; the Job stays bound to it by name and is adopted then.
		l.countLeaseError()
		l.drop(h)
	default:
		l.countLeaseError()
		logr.FromContextOrDiscard(ctx).V(1).Info("Lease renewal failed; retrying", "messageId", h.msg.ID, "err", err)
	}
}

func (l *loop) isHeld(h *held) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held[h.key] == h
}

// pendingDelay is the release delay of a settle the keeper decides for a held message: the back-off of a failed
// attempt.
func pendingDelay(act Action) time.Duration {
	if act.Kind == Release && act.Job != "" {
		return RetryDelay(act.Attempt)
	}
	return 0
}

func (l *loop) countLeaseError() {
	l.cfg.Metrics.LeaseErrors.WithLabelValues(l.labels()...).Inc()
	l.mu.Lock()
	l.totals.LeaseErrors++
	l.dirty = true
	l.mu.Unlock()
}

func (l *loop) drop(h *held) {
	l.mu.Lock()
	if l.held[h.key] == h {
		delete(l.held, h.key)
	}
	l.dirty = true
	l.mu.Unlock()
	l.nudgeSlot()
}

// finishSettle lets a settled message go. When the queue delivered it again during the settle (a release that
// the queue redelivers at once), that delivery is held afresh and admitted now, as the receive loop would have:
// otherwise it would sit unheld until its lease ran out.
func (l *loop) finishSettle(ctx context.Context, sj *v1alpha1.ScaledJob, recv sources.Receiver, h *held) {
	l.mu.Lock()
	next := h.redelivery
	h.settling, h.redelivery = false, nil
	var nh *held
	if next != nil && l.held[h.key] == h {
		nh = &held{msg: *next, key: h.key}
		l.held[h.key] = nh
		l.dirty = true
	}
	l.mu.Unlock()
	if nh != nil {
		// Not in this call: admit may settle again, and a queue that keeps redelivering at once would recurse.
		// The WaitGroup is safe here: callers are the keeper or the receive loop, which Stop waits for before
		// admits.Wait, or an admit, which admits counts.
		l.admits.Add(1)
		go func() {
			defer l.admits.Done()
			l.admit(ctx, sj, recv, nh)
		}()
		return
	}
	l.drop(h)
}

// settleMessage acks, releases or dead-letters a held message, records the outcome on its Job, and lets it go.
// A failure keeps the message held and the action pending for the keeper's next tick.
func (l *loop) settleMessage(ctx context.Context, sj *v1alpha1.ScaledJob, recv sources.Receiver, h *held, act Action, releaseDelay time.Duration) {
	log := logr.FromContextOrDiscard(ctx)
	l.mu.Lock()
	h.settling = true
	l.mu.Unlock()
	var err error
	outcome, action := "", ""
	switch act.Kind {
	case Ack:
		err, outcome, action = recv.Ack(ctx, &h.msg), v1alpha1.OutcomeAcked, "acked"
	case Release:
		err, outcome, action = recv.Release(ctx, &h.msg, releaseDelay), v1alpha1.OutcomeReleased, "released"
	case DeadLetter:
		details := map[string]string{"kubedispatch-scaledjob": sj.Namespace + "/" + sj.Name, "kubedispatch-deliveries": strconv.Itoa(int(act.Attempt))}
		if act.Job != "" {
			details["kubedispatch-job"] = act.Job
		}
		err, outcome, action = recv.DeadLetter(ctx, &h.msg, act.Reason, details), v1alpha1.OutcomeDeadLettered, "dead_lettered"
		if errors.Is(err, sources.ErrNoDeadLetter) {
			// No destination (neither ours nor the queue's own): it was handed back; keep it out of the way for a
			// while so the queue's redrive policy, if any, can act without the message coming straight back.
			err, outcome, action = recv.Release(ctx, &h.msg, exhaustedReleaseDelay), v1alpha1.OutcomeReleased, "released"
		}
		l.cfg.Recorder.Eventf(sj, nil, corev1.EventTypeWarning, ReasonDeadLettered, "DeadLetter", "message %s: %s", h.msg.ID, apilimit.Truncate(act.Reason, 900))
	}
	if err != nil && !errors.Is(err, sources.ErrLeaseLost) && !errors.Is(err, sources.ErrNoDeadLetter) {
		log.V(1).Info("Settling the message failed; retrying", "messageId", h.msg.ID, "action", act.Kind.String(), "err", err)
		l.mu.Lock()
		h.pending, h.pendingRelease = &act, releaseDelay
		h.settling = false
		if r := h.redelivery; r != nil {
			// Delivered again meanwhile: retry with the latest receipt handle, as for any redelivery.
			h.msg.Handle, h.msg.LeaseUntil, h.redelivery = r.Handle, r.LeaseUntil, nil
		}
		l.mu.Unlock()
		return
	}
	if err == nil || errors.Is(err, sources.ErrNoDeadLetter) {
		l.cfg.Metrics.Messages.WithLabelValues(l.nn.Namespace, l.nn.Name, action).Inc()
		l.mu.Lock()
		switch action {
		case "acked":
			l.totals.Acked++
		case "released":
			l.totals.Released++
		case "dead_lettered":
			l.totals.DeadLettered++
			l.totals.LastDeadLetter = apilimit.Truncate(act.Reason, 500)
		}
		l.mu.Unlock()
		if act.Job != "" {
			l.recordOutcome(ctx, sj.Namespace, act.Job, outcome)
		}
	}
	// A lost lease: the queue delivers the message again, and its Job's outcome is applied then.
	l.finishSettle(ctx, sj, recv, h)
}

// recordOutcome annotates the Job with its message's fate, so history may prune it.
func (l *loop) recordOutcome(ctx context.Context, namespace, name, outcome string) {
	patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1alpha1.AnnotationMessageOutcome, outcome))
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if err := l.cfg.Client.Patch(ctx, job, client.RawPatch(types.MergePatchType, patch)); err != nil && !apierrors.IsNotFound(err) {
		logr.FromContextOrDiscard(ctx).V(1).Info("Could not record the message outcome on its Job", "job", name, "err", err)
	}
}
