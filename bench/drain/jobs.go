package main

import (
	"context"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/kubedispatch/kubedispatch/bench/internal/benchkit"
	"github.com/kubedispatch/kubedispatch/dispatch"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// jobTracker follows the Jobs of one namespace and label selector with a watch: when each first appeared, when each
// was first seen finished (Complete or Failed; or deleted before that), and the largest number unfinished after any
// event.
type jobTracker struct {
	stop func()

	mu            sync.Mutex
	created       map[types.UID]time.Time
	finished      map[types.UID]time.Time
	maxUnfinished int
	err           error
}

// trackerState is a snapshot of a jobTracker.
type trackerState struct {
	created, unfinished, maxUnfinished int
	err                                error
}

// startJobTracker watches the namespace's Jobs, of which there must be none yet; the watch is established when it
// returns.
func startJobTracker(ctx context.Context, cs kubernetes.Interface, ns, selector string) (*jobTracker, error) {
	jobs := cs.BatchV1().Jobs(ns)
	src := benchkit.JobSource{
		List:  func(ctx context.Context, o metav1.ListOptions) (kruntime.Object, error) { return jobs.List(ctx, o) },
		Watch: jobs.Watch,
	}
	t := &jobTracker{created: map[types.UID]time.Time{}, finished: map[types.UID]time.Time{}}
	stop, err := benchkit.WatchJobs(ctx, ns, selector, src, func(ev watch.Event, now time.Time) {
		if job, ok := ev.Object.(*batchv1.Job); ok {
			t.observe(job, ev.Type == watch.Deleted, now)
		}
	}, t.fail)
	if err != nil {
		return nil, err
	}
	t.stop = stop
	return t, nil
}

func (t *jobTracker) observe(job *batchv1.Job, deleted bool, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.created[job.UID]; !ok {
		t.created[job.UID] = now
	}
	if _, ok := t.finished[job.UID]; !ok && (deleted || dispatch.IsFinished(job)) {
		t.finished[job.UID] = now
	}
	t.maxUnfinished = max(t.maxUnfinished, len(t.created)-len(t.finished))
}

func (t *jobTracker) fail(err error) {
	t.mu.Lock()
	t.err = err
	t.mu.Unlock()
}

func (t *jobTracker) state() trackerState {
	t.mu.Lock()
	defer t.mu.Unlock()
	return trackerState{created: len(t.created), unfinished: len(t.created) - len(t.finished), maxUnfinished: t.maxUnfinished, err: t.err}
}

// times returns when each Job appeared and when each finished, keyed by UID (copies).
func (t *jobTracker) times() (created, finished map[types.UID]time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	created, finished = make(map[types.UID]time.Time, len(t.created)), make(map[types.UID]time.Time, len(t.finished))
	for k, v := range t.created {
		created[k] = v
	}
	for k, v := range t.finished {
		finished[k] = v
	}
	return created, finished
}

// capSampler lists the Jobs of one namespace and label selector every interval and keeps the largest number
// unfinished.
type capSampler struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	max      int
	samples  int
	failures int
}

func startCapSampler(ctx context.Context, cs kubernetes.Interface, ns, selector string, every time.Duration) *capSampler {
	sctx, cancel := context.WithCancel(ctx)
	s := &capSampler{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			list, err := cs.BatchV1().Jobs(ns).List(sctx, metav1.ListOptions{LabelSelector: selector})
			if sctx.Err() != nil {
				return
			}
			s.mu.Lock()
			if err != nil {
				s.failures++
			} else {
				s.samples++
				s.max = max(s.max, framework.Unfinished(list.Items))
			}
			s.mu.Unlock()
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the largest number of unfinished Jobs seen, the samples taken and the lists
// that failed.
func (s *capSampler) stop() (maxUnfinished, samples, failures int) {
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max, s.samples, s.failures
}
