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

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/bench/internal/benchkit"
	"github.com/kubedispatch/kubedispatch/dispatch"
)

// jobRecord is what the watch saw of one Job.
type jobRecord struct {
	// Seen is when the watch delivered the Job's first event (its ADDED event): the benchmark's "Job created".
	Seen time.Time
	// Created is the Job's metadata.creationTimestamp (second precision).
	Created time.Time
	// Finished is when the Job was first seen Complete or Failed (or deleted); zero until then.
	Finished time.Time
	// ScaledJob and MessageID are the Job's kubedispatch.io/scaledjob label and kubedispatch.io/message-id
	// annotation ("" in count mode); BenchID is its pod template's benchIDAnnotation (Pub/Sub and Service Bus).
	ScaledJob, MessageID, BenchID string
	// Outcome is the Job's kubedispatch.io/message-outcome annotation as last seen ("" until the message is settled).
	Outcome string
}

// key names the Job's message as sentMessage.ID does: the benchmark's id when the Job has one, else the queue's.
func (j jobRecord) key() string {
	if j.BenchID != "" {
		return j.BenchID
	}
	return j.MessageID
}

// jobRecorder follows the Jobs of one namespace with a watch and keeps a record per Job, and the largest number of
// unfinished Jobs after any event.
type jobRecorder struct {
	stop func()

	mu            sync.Mutex
	jobs          map[types.UID]*jobRecord
	unfinished    int
	maxUnfinished int
	err           error
}

// startJobRecorder watches the Jobs of ns that match selector, of which there must be none yet; the watch is
// established when it returns.
func startJobRecorder(ctx context.Context, cs kubernetes.Interface, ns, selector string) (*jobRecorder, error) {
	jobs := cs.BatchV1().Jobs(ns)
	src := benchkit.JobSource{
		List:  func(ctx context.Context, o metav1.ListOptions) (kruntime.Object, error) { return jobs.List(ctx, o) },
		Watch: jobs.Watch,
	}
	r := &jobRecorder{jobs: map[types.UID]*jobRecord{}}
	stop, err := benchkit.WatchJobs(ctx, ns, selector, src, func(ev watch.Event, now time.Time) {
		if job, ok := ev.Object.(*batchv1.Job); ok {
			r.observe(job, ev.Type == watch.Deleted, now)
		}
	}, r.fail)
	if err != nil {
		return nil, err
	}
	r.stop = stop
	return r, nil
}

func (r *jobRecorder) observe(job *batchv1.Job, deleted bool, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.jobs[job.UID]
	if !ok {
		rec = &jobRecord{Seen: now, Created: job.CreationTimestamp.Time, ScaledJob: job.Labels[v1alpha1.LabelScaledJob],
			MessageID: job.Annotations[v1alpha1.AnnotationMessageID], BenchID: job.Spec.Template.Annotations[benchIDAnnotation]}
		r.jobs[job.UID] = rec
		r.unfinished++
	}
	if o := job.Annotations[v1alpha1.AnnotationMessageOutcome]; o != "" {
		rec.Outcome = o
	}
	if rec.Finished.IsZero() && (deleted || dispatch.IsFinished(job)) {
		rec.Finished = now
		r.unfinished--
	}
	r.maxUnfinished = max(r.maxUnfinished, r.unfinished)
}

func (r *jobRecorder) fail(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

// recorderState is a snapshot of a jobRecorder's counts.
type recorderState struct {
	seen, unfinished, maxUnfinished int
	err                             error
}

func (r *jobRecorder) state() recorderState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return recorderState{seen: len(r.jobs), unfinished: r.unfinished, maxUnfinished: r.maxUnfinished, err: r.err}
}

// records returns a copy of every record.
func (r *jobRecorder) records() []jobRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]jobRecord, 0, len(r.jobs))
	for _, rec := range r.jobs {
		out = append(out, *rec)
	}
	return out
}

// first returns the earliest-seen Job of the ScaledJob name and how many it has.
func (r *jobRecorder) first(name string) (jobRecord, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var (
		out jobRecord
		n   int
	)
	for _, rec := range r.jobs {
		if rec.ScaledJob != name {
			continue
		}
		if n++; n == 1 || rec.Seen.Before(out.Seen) {
			out = *rec
		}
	}
	return out, n
}
