package dispatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/sources"
)

// Pollers read the triggers outside the reconcile workers: one goroutine per ScaledJob reads its triggers every
// pollingInterval (and, coalesced to at most one extra read per second, when one of its Jobs finishes), stores the
// result and wakes the ScaledJob. Reconcile only reads the stored result, so a black-holed endpoint delays only its
// own ScaledJob. Trigger configuration (TriggerAuthentications, Secrets) is resolved when a poller is (re)built: on
// a spec change, when a TriggerAuthentication or ClusterTriggerAuthentication it uses (or its namespace's labels)
// changes (Reresolve), after the queue refused the credentials or a resolution failed, and at least every
// SecretRefresh otherwise.
type Pollers struct {
	// Concurrency bounds the trigger reads in flight across all ScaledJobs.
	Concurrency int
	// SecretRefresh is the longest a resolved configuration (Secret values) is reused.
	SecretRefresh time.Duration

	r       *Reconciler
	sem     chan struct{}
	wake    chan event.GenericEvent
	mu      sync.Mutex
	base    context.Context
	running map[string]*poller
	results map[string]pollResult
	// finished holds, per ScaledJob, when each of its Jobs was seen finishing, until a reading taken after that is
	// stored: a reading taken before a Job finished still counts that Job's work, so the decision counts the Job
	// as running (the state the reading saw) instead of waiting for a new reading.
	finished map[string]map[string]time.Time
	backoff  *endpointBackoff
}

var errInvalidSpec = errors.New("the spec is invalid")

// pollResult is one reading of all of a ScaledJob's triggers.
type pollResult struct {
	generation int64
	readAt     time.Time // local clock when the read started
	setupErr   error     // resolving or building the sources failed: no trigger was read
	triggers   []triggerResult
}

type triggerResult struct {
	b   sources.Backlog
	err error
}

type poller struct {
	generation int64
	cancel     context.CancelFunc
	refresh    chan struct{}
	// reresolve asks the next read to resolve the configuration again (set by Reresolve before it nudges refresh).
	reresolve atomic.Bool
	// urgent makes the next extra read skip the finish batch (set by ReadNow and Reresolve, not by Refresh).
	urgent atomic.Bool
}

// finishBatch is how long an extra read asked for by a finished Job waits for more finishes to share it. Jobs
// started together finish within a few hundred milliseconds of each other (the Job controller marks them Complete in
// batches); without the wait the first finish takes the read and the others wait for the next second.
const finishBatch = 200 * time.Millisecond

func newPollers(r *Reconciler, concurrency int, secretRefresh time.Duration) *Pollers {
	if concurrency <= 0 {
		concurrency = 64
	}
	if secretRefresh <= 0 {
		secretRefresh = 5 * time.Minute
	}
	return &Pollers{
		Concurrency: concurrency, SecretRefresh: secretRefresh, r: r,
		sem: make(chan struct{}, concurrency), wake: make(chan event.GenericEvent, 1024),
		running: map[string]*poller{}, results: map[string]pollResult{}, finished: map[string]map[string]time.Time{},
		backoff: newEndpointBackoff(),
	}
}

// Start runs until ctx ends (a manager Runnable, leader-only); pollers started by Ensure live under it.
func (p *Pollers) Start(ctx context.Context) error {
	p.mu.Lock()
	p.base = ctx
	p.mu.Unlock()
	<-ctx.Done()
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, pl := range p.running {
		pl.cancel()
		delete(p.running, k)
	}
	return nil
}

// NeedLeaderElection makes the pollers leader-only, like the reconciler.
func (p *Pollers) NeedLeaderElection() bool { return true }

// Ensure starts the ScaledJob's poller, or rebuilds it when the spec changed. It returns false when the pollers
// are not running yet (before leadership).
func (p *Pollers) Ensure(sj *v1alpha1.ScaledJob) bool {
	key := keyOf(sj)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.base == nil {
		return false
	}
	if pl, ok := p.running[key]; ok {
		if pl.generation == sj.Generation {
			return true
		}
		pl.cancel()
	}
	ctx, cancel := context.WithCancel(p.base)
	pl := &poller{generation: sj.Generation, cancel: cancel, refresh: make(chan struct{}, 1)}
	p.running[key] = pl
	go p.loop(ctx, types.NamespacedName{Namespace: sj.Namespace, Name: sj.Name}, pl)
	return true
}

// Stop ends a ScaledJob's poller and drops its readings.
func (p *Pollers) Stop(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pl, ok := p.running[key]; ok {
		pl.cancel()
		delete(p.running, key)
	}
	delete(p.results, key)
	delete(p.finished, key)
}

// Refresh asks for a fresh reading because the ScaledJob's Job named job was seen finishing at now; it is
// coalesced by the poller. Until a reading taken after now is stored, FinishedAfter counts that Job.
func (p *Pollers) Refresh(key, job string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pl, ok := p.running[key]; ok {
		if p.finished[key] == nil {
			p.finished[key] = map[string]time.Time{}
		}
		p.finished[key][job] = now
		select {
		case pl.refresh <- struct{}{}:
		default:
		}
	}
}

// ReadNow asks for a fresh reading at once (coalesced like Refresh), e.g. because the ScaledJob was unpaused: the
// stored reading may predate the work that is waiting now.
func (p *Pollers) ReadNow(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pl, ok := p.running[key]; ok {
		pl.urgent.Store(true)
		select {
		case pl.refresh <- struct{}{}:
		default:
		}
	}
}

// Reresolve makes the ScaledJob's poller resolve its trigger configuration again and read at once (coalesced like
// Refresh): a TriggerAuthentication or ClusterTriggerAuthentication it uses changed, or its namespace's labels did.
// The reading stored then reflects the new credentials, or the refusal (a ClusterTriggerAuthentication that no
// longer allows the namespace), and wakes the ScaledJob. It reports whether the ScaledJob has a poller.
func (p *Pollers) Reresolve(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	pl, ok := p.running[key]
	if !ok {
		return false
	}
	pl.reresolve.Store(true)
	pl.urgent.Store(true)
	select {
	case pl.refresh <- struct{}{}:
	default:
	}
	return true
}

// FinishedAfter returns how many of the ScaledJob's Jobs were seen finishing after a reading taken at readAt: that
// reading still counts their work, so a decision on it counts them as running.
func (p *Pollers) FinishedAfter(key string, readAt time.Time) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, at := range p.finished[key] {
		if readAt.Before(at) {
			n++
		}
	}
	return n
}

// PollNow reads a ScaledJob's triggers once, synchronously, and stores the result (tests; the loop does the same).
func (p *Pollers) PollNow(ctx context.Context, sj *v1alpha1.ScaledJob) {
	p.store(keyOf(sj), p.read(ctx, sj, true))
}

// result returns the latest reading of a ScaledJob.
func (p *Pollers) result(key string) (pollResult, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	res, ok := p.results[key]
	return res, ok
}

// store keeps res as the ScaledJob's latest reading and forgets the finishes it already reflects.
func (p *Pollers) store(key string, res pollResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.results[key] = res
	for job, at := range p.finished[key] {
		if !res.readAt.Before(at) {
			delete(p.finished[key], job)
		}
	}
}

// loop reads the triggers every pollingInterval until ctx ends.
func (p *Pollers) loop(ctx context.Context, nn types.NamespacedName, pl *poller) {
	log := logr.FromContextOrDiscard(ctx).WithValues("scaledJob", nn.String())
	var resolvedAt time.Time
	var lastExtra time.Time // when the last read asked for by a finished Job started
	for {
		var sj v1alpha1.ScaledJob
		if err := p.r.Client.Get(ctx, nn, &sj); err != nil {
			if ctx.Err() != nil {
				return
			}
			log.V(1).Info("Poller could not read its ScaledJob", "err", err)
		} else if sj.Generation == pl.generation {
			reresolve := pl.reresolve.Swap(false) || resolvedAt.IsZero() || p.r.Clock.Since(resolvedAt) >= p.SecretRefresh
			res := p.read(ctx, &sj, reresolve)
			if reresolve {
				resolvedAt = p.r.Clock.Now()
			}
			if needsReresolve(res) {
				resolvedAt = time.Time{}
			}
			p.store(keyOf(&sj), res)
			select {
			case p.wake <- event.GenericEvent{Object: &v1alpha1.ScaledJob{ObjectMeta: sj.ObjectMeta}}:
			case <-ctx.Done():
				return
			}
		}
		poll := time.Duration(sj.Spec.PollingIntervalSeconds()) * time.Second
		if poll <= 0 {
			poll = 30 * time.Second
		}
		timer := p.r.Clock.NewTimer(poll)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C():
		case <-pl.refresh:
			timer.Stop()
			// Coalesce: at most one extra read per second, and a read for a finished Job waits finishBatch for the
			// finishes that follow (those that arrive meanwhile share it).
			if wait := extraReadWait(p.r.Clock.Since(lastExtra), pl.urgent.Swap(false)); wait > 0 {
				t := p.r.Clock.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C():
				}
			}
			// Asks that came while waiting are answered by the read that starts now.
			select {
			case <-pl.refresh:
			default:
			}
			pl.urgent.Store(false)
			lastExtra = p.r.Clock.Now()
		}
	}
}

// extraReadWait is how long an extra read waits, sinceLast after the previous extra read started: until a second
// has passed since then, and, unless the ask is urgent (an unpause or new credentials), finishBatch for the
// finishes that follow the one that asked.
func extraReadWait(sinceLast time.Duration, urgent bool) time.Duration {
	wait := time.Second - sinceLast
	if !urgent {
		wait = max(wait, finishBatch)
	}
	return max(wait, 0)
}

// needsReresolve reports whether the next read resolves the configuration again: the queue refused the
// credentials, or resolving (or building the sources) failed, so that a failure after an edit is never followed by
// reads with the sources built before it.
func needsReresolve(res pollResult) bool {
	if res.setupErr != nil && !errors.Is(res.setupErr, errInvalidSpec) {
		return true
	}
	for _, t := range res.triggers {
		if errors.Is(t.err, sources.ErrUnauthorized) {
			return true
		}
	}
	return false
}

// read resolves (when asked, or when nothing is built yet) and reads every trigger of sj once.
func (p *Pollers) read(ctx context.Context, sj *v1alpha1.ScaledJob, reresolve bool) pollResult {
	res := pollResult{generation: sj.Generation, readAt: p.r.Clock.Now()}
	if !sj.DeletionTimestamp.IsZero() || len(sj.Validate()) > 0 {
		// An invalid spec reads nothing (its queue may not be the one meant); the reconciler reports it.
		res.setupErr = errInvalidSpec
		return res
	}
	key := keyOf(sj)
	srcs, ok := p.r.sourceCache.current(key, string(sj.UID), sj.Generation)
	if reresolve || !ok {
		cfgs, err := p.r.resolveConfigs(ctx, sj)
		if err == nil {
			srcs, err = p.r.sourceCache.get(ctx, p.r.Registry, key, string(sj.UID), sj.Generation, cfgs)
		}
		if err != nil {
			if sources.IsConfigError(err) {
				// The configuration is refused now (a ClusterTriggerAuthentication that no longer allows the
				// namespace, a TriggerAuthentication or Secret that is gone): the sources built from the previous
				// one must not be read again.
				p.r.sourceCache.forget(key)
			}
			res.setupErr = err
			return res
		}
	}
	res.triggers = make([]triggerResult, len(srcs))
	var wg sync.WaitGroup
	for i, s := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res.triggers[i] = p.readOne(ctx, sj, i, s, res.readAt)
		}()
	}
	wg.Wait()
	return res
}

// readOne reads one trigger within the global concurrency bound, the trigger timeout and its endpoint's back-off.
func (p *Pollers) readOne(ctx context.Context, sj *v1alpha1.ScaledJob, i int, s sources.Source, now time.Time) triggerResult {
	endpoint := ""
	if e, ok := s.(sources.Endpointer); ok {
		endpoint = e.Endpoint()
	}
	if wait, failures := p.backoff.wait(endpoint, now); wait > 0 {
		return triggerResult{err: fmt.Errorf("endpoint %s backing off for %s after %d failed reads", endpoint, wait.Round(time.Millisecond), failures)}
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return triggerResult{err: ctx.Err()}
	}
	defer func() { <-p.sem }()
	tctx, cancel := context.WithTimeout(ctx, p.r.TriggerTimeout)
	defer cancel()
	t0 := time.Now() //nolint:forbidigo // latency metric only, not a decision input
	b, err := s.Backlog(tctx, now)
	p.r.Metrics.TriggerLatency.WithLabelValues(sj.Spec.Triggers[i].Type).Observe(time.Since(t0).Seconds())
	p.r.Metrics.QueueReads.WithLabelValues(sj.Spec.Triggers[i].Type).Inc()
	// Only unreachable endpoints back off; a missing queue or refused key is that trigger's own problem.
	p.backoff.record(endpoint, now, err != nil && !sources.IsConfigError(err) && !errors.Is(err, sources.ErrNotFound) &&
		!errors.Is(err, sources.ErrUnauthorized))
	return triggerResult{b: b, err: err}
}

// endpointBackoff spaces out reads of an endpoint that keeps failing (1 s doubling to 30 s), so one dead endpoint
// does not fill the global concurrency bound with reads that will time out.
type endpointBackoff struct {
	mu sync.Mutex
	m  map[string]backoffState
}

type backoffState struct {
	failures int
	until    time.Time
}

func newEndpointBackoff() *endpointBackoff { return &endpointBackoff{m: map[string]backoffState{}} }

func (b *endpointBackoff) wait(endpoint string, now time.Time) (time.Duration, int) {
	if endpoint == "" {
		return 0, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.m[endpoint]
	if now.Before(st.until) {
		return st.until.Sub(now), st.failures
	}
	return 0, st.failures
}

func (b *endpointBackoff) record(endpoint string, now time.Time, failed bool) {
	if endpoint == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !failed {
		delete(b.m, endpoint)
		return
	}
	st := b.m[endpoint]
	st.failures++
	st.until = now.Add(EndpointBackoff(st.failures))
	b.m[endpoint] = st
}

// EndpointBackoff is the pause after the n-th consecutive failed read of an endpoint: none after the first (a
// single timeout is retried at the next poll), then 1 s doubling up to 30 s.
func EndpointBackoff(failures int) time.Duration {
	if failures <= 1 {
		return 0
	}
	d := time.Second
	for i := 2; i < failures && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}
