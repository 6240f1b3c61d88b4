package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/bench/internal/benchkit"
	"github.com/kubedispatch/kubedispatch/e2e/cluster"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// memoryResult is scenario (b): the dispatcher's memory with many Jobs and pods in its caches.
type memoryResult struct {
	ScaledJobs   int `json:"scaledJobs"`
	FinishedJobs int `json:"finishedJobs"`
	RunningJobs  int `json:"runningJobs"`
	// MaxReplicaCount and SuccessfulJobsHistoryLimit are those of every ScaledJob: each is full, and keeps all its
	// finished Jobs.
	MaxReplicaCount            int `json:"maxReplicaCount"`
	SuccessfulJobsHistoryLimit int `json:"successfulJobsHistoryLimit"`

	// CreateSeconds is the time the benchmark took to create the Jobs; ObjectsSeconds runs from the first create
	// until every finished Job was Complete and every running one had a ready pod.
	CreateSeconds  float64 `json:"createSeconds"`
	ObjectsSeconds float64 `json:"objectsSeconds"`
	PodsAtStart    int     `json:"podsAtStart"`

	// AllTickedSeconds runs from the dispatcher's start until every ScaledJob has a decision of its own;
	// SettleSeconds is how long it then ran before the figures were read.
	AllTickedSeconds float64 `json:"allTickedSeconds"`
	SettleSeconds    float64 `json:"settleSeconds"`

	// RSSMiB is VmRSS after the settle; HWMMiB is VmHWM then (the initial lists included); PeakRSSMiB the largest
	// VmRSS sampled every second from start to end; HeapInUseMiB is go_memstats_heap_inuse_bytes.
	RSSMiB       float64 `json:"rssMiB"`
	HWMMiB       float64 `json:"hwmMiB"`
	PeakRSSMiB   float64 `json:"peakRssMiB"`
	HeapInUseMiB float64 `json:"heapInUseMiB"`
	// Cores is the dispatcher's CPU over the settle.
	Cores float64 `json:"cores"`

	JobsCreated     float64  `json:"jobsCreated"`
	JobsDeleted     float64  `json:"jobsDeleted"`
	JobsAtEnd       int      `json:"jobsAtEnd"`
	StatusActive    int      `json:"statusActive"`
	StatusSucceeded int      `json:"statusSucceeded"`
	Problems        []string `json:"problems,omitempty"`
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func runMemory(ctx context.Context, e *env, o options) (*memoryResult, error) {
	res := &memoryResult{ScaledJobs: o.memScaledJobs, FinishedJobs: o.finishedJobs, RunningJobs: o.runningJobs,
		MaxReplicaCount: max(1, ceilDiv(o.runningJobs, o.memScaledJobs)), SuccessfulJobsHistoryLimit: max(100, ceilDiv(o.finishedJobs, o.memScaledJobs))}
	benchkit.Step("Scenario memory: %d ScaledJobs in %s (cron window closed, maxReplicaCount %d, successfulJobsHistoryLimit %d) "+
		"owning %d Complete Jobs and %d running Jobs, created by the benchmark, with their kwok pods",
		o.memScaledJobs, memoryNamespace, res.MaxReplicaCount, res.SuccessfulJobsHistoryLimit, o.finishedJobs, o.runningJobs)

	now := time.Now()
	sjs := make([]*v1alpha1.ScaledJob, o.memScaledJobs)
	if err := benchkit.ForEach(ctx, "ScaledJobs created", len(sjs), o.setupWorkers, func(ctx context.Context, i int) error {
		sj := &v1alpha1.ScaledJob{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("mem-%04d", i), Namespace: memoryNamespace},
			Spec: v1alpha1.ScaledJobSpec{
				JobTargetRef:               jobTarget("1h"),
				PollingInterval:            ptr.To(int32(o.poll)),
				MaxReplicaCount:            ptr.To(int32(res.MaxReplicaCount)),
				SuccessfulJobsHistoryLimit: ptr.To(int32(res.SuccessfulJobsHistoryLimit)),
				Triggers:                   []v1alpha1.ScaleTrigger{{Type: "cron", Name: "window", Metadata: closedWindow(now)}},
			},
		}
		if err := e.setupCl.Create(ctx, sj); err != nil {
			return fmt.Errorf("creating ScaledJob %s: %w", sj.Name, err)
		}
		sjs[i] = sj
		return nil
	}); err != nil {
		return nil, err
	}

	tr, err := startJobTracker(ctx, e, memoryNamespace)
	if err != nil {
		return nil, err
	}
	defer tr.stop()
	total := o.runningJobs + o.finishedJobs
	benchkit.Step("Creating %d Jobs (%d running first, then %d that finish after 1 s), %d in parallel at client QPS %g; "+
		"their pods are bound to the kwok node directly (spec.nodeName)", total, o.runningJobs, o.finishedJobs, o.setupWorkers, o.setupQPS)
	t := time.Now()
	if err := benchkit.ForEach(ctx, "Jobs created", total, o.setupWorkers, func(ctx context.Context, j int) error {
		job := memoryJob(sjs, j, o.runningJobs)
		if _, err := e.setup.BatchV1().Jobs(memoryNamespace).Create(ctx, job, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating Job %s: %w", job.Name, err)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	res.CreateSeconds = time.Since(t).Seconds()
	benchkit.Note("created in %.1f s (%.0f Jobs/s)", res.CreateSeconds, float64(total)/res.CreateSeconds)

	benchkit.Step("Waiting until %d Jobs are Complete and %d have a ready pod", o.finishedJobs, o.runningJobs)
	last := time.Now()
	if err := benchkit.WaitUntil(ctx, "the Jobs to finish or run", waitLimit, time.Second, nil, func() (bool, error) {
		complete, ready, err := tr.counts()
		if err != nil {
			return false, err
		}
		if time.Since(last) >= 10*time.Second {
			benchkit.Note("%d/%d Complete, %d/%d ready", complete, o.finishedJobs, ready, o.runningJobs)
			last = time.Now()
		}
		return complete >= o.finishedJobs && ready >= o.runningJobs, fmt.Errorf("%d Complete, %d ready", complete, ready)
	}); err != nil {
		return nil, err
	}
	res.ObjectsSeconds = time.Since(t).Seconds()
	tr.stop()
	var pods metav1.PartialObjectMetadataList
	pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	if err := e.cl.List(ctx, &pods, client.InNamespace(memoryNamespace)); err != nil {
		return nil, fmt.Errorf("listing the pods of %s: %w", memoryNamespace, err)
	}
	res.PodsAtStart = len(pods.Items)
	benchkit.Note("done %.1f s after the first create; %d pods in %s", res.ObjectsSeconds, res.PodsAtStart, memoryNamespace)

	benchkit.Step("Starting the dispatcher on %s (default flags; log under %s/logs)", memoryNamespace, e.dir)
	started := time.Now()
	d, err := startDispatcher(ctx, e.c, e.bin, e.dir, memoryNamespace, "")
	if err != nil {
		return nil, err
	}
	defer d.Stop()
	if err := waitAllTicked(ctx, e.cl, d, memoryNamespace, o.memScaledJobs, started); err != nil {
		return nil, err
	}
	res.AllTickedSeconds = time.Since(started).Seconds()
	benchkit.Note("every ScaledJob ticked %.1f s after the start", res.AllTickedSeconds)
	benchkit.Step("Settling for %s", o.memSettle)
	cpu0, err := cpuSeconds(d.Pid())
	if err != nil {
		return nil, err
	}
	t = time.Now()
	if err := sleepWatching(ctx, d, o.memSettle, func(elapsed time.Duration) {
		rss, _ := statusMiB(d.Pid(), "VmRSS")
		benchkit.Note("%3.0f s: VmRSS %.1f MiB", elapsed.Seconds(), rss)
	}); err != nil {
		return nil, err
	}
	cpu1, err := cpuSeconds(d.Pid())
	if err != nil {
		return nil, err
	}
	res.SettleSeconds = time.Since(t).Seconds()
	res.Cores = (cpu1 - cpu0) / res.SettleSeconds
	if res.RSSMiB, err = d.sampleRSS(); err != nil {
		return nil, err
	}
	if res.HWMMiB, err = statusMiB(d.Pid(), "VmHWM"); err != nil {
		return nil, err
	}
	res.PeakRSSMiB = d.peak()
	m, err := d.metrics(ctx)
	if err != nil {
		return nil, err
	}
	res.HeapInUseMiB = m.sum("go_memstats_heap_inuse_bytes", nil) / (1 << 20)
	res.JobsCreated = m.sum("kubedispatch_jobs_created_total", nil)
	res.JobsDeleted = m.sum("kubedispatch_jobs_deleted_total", nil)
	benchkit.Note("VmRSS %.1f MiB, VmHWM %.1f MiB (target < %g MiB); Go heap in use %.1f MiB; %.3f core while settled",
		res.RSSMiB, res.HWMMiB, targetMemoryRSSMiB, res.HeapInUseMiB, res.Cores)

	if err := res.checkEnd(ctx, e.cl); err != nil {
		return nil, err
	}
	benchkit.Step("Stopping the dispatcher")
	d.Stop()
	return res, nil
}

// memoryJob is Job j: the first running ones run for an hour, the others finish after a second; Job j belongs to
// ScaledJob j modulo their number, as the dispatcher would have made it (label, controller reference,
// generation annotation).
func memoryJob(sjs []*v1alpha1.ScaledJob, j, running int) *batchv1.Job {
	kind, k, runFor := "r", j, "1h"
	if j >= running {
		kind, k, runFor = "f", j-running, "1s"
	}
	sj := sjs[k%len(sjs)]
	spec := jobTarget(runFor)
	spec.Template.Labels = map[string]string{v1alpha1.LabelScaledJob: sj.Name}
	spec.Template.Spec.NodeName = cluster.NodeName // skips the scheduler, which binds about 50 pods/s
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:            fmt.Sprintf("%s-%s%04d", sj.Name, kind, k/len(sjs)),
			Namespace:       memoryNamespace,
			Labels:          map[string]string{v1alpha1.LabelScaledJob: sj.Name},
			Annotations:     map[string]string{v1alpha1.AnnotationGeneration: strconv.FormatInt(sj.Generation, 10)},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(sj, v1alpha1.GroupVersion.WithKind("ScaledJob"))},
		},
		Spec: spec,
	}
}

// checkEnd compares the ScaledJobs' status and the Jobs with what was created, recording problems.
func (r *memoryResult) checkEnd(ctx context.Context, cl client.Client) error {
	var list v1alpha1.ScaledJobList
	if err := cl.List(ctx, &list, client.InNamespace(memoryNamespace)); err != nil {
		return fmt.Errorf("listing the ScaledJobs of %s: %w", memoryNamespace, err)
	}
	notReady := 0
	for i := range list.Items {
		sj := &list.Items[i]
		r.StatusActive += int(sj.Status.Active)
		r.StatusSucceeded += int(sj.Status.Succeeded)
		if c := framework.Condition(sj, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			notReady++
		}
	}
	var jobs metav1.PartialObjectMetadataList
	jobs.SetGroupVersionKind(batchv1.SchemeGroupVersion.WithKind("JobList"))
	if err := cl.List(ctx, &jobs, client.InNamespace(memoryNamespace)); err != nil {
		return fmt.Errorf("listing the Jobs of %s: %w", memoryNamespace, err)
	}
	r.JobsAtEnd = len(jobs.Items)
	if r.JobsCreated != 0 || r.JobsDeleted != 0 || r.JobsAtEnd != r.RunningJobs+r.FinishedJobs {
		r.Problems = append(r.Problems, fmt.Sprintf("the dispatcher created %.0f and deleted %.0f Jobs; %d at the end, want %d",
			r.JobsCreated, r.JobsDeleted, r.JobsAtEnd, r.RunningJobs+r.FinishedJobs))
	}
	if r.StatusActive != r.RunningJobs || r.StatusSucceeded != r.FinishedJobs {
		r.Problems = append(r.Problems, fmt.Sprintf("the ScaledJobs' status counts %d active and %d succeeded Jobs, want %d and %d",
			r.StatusActive, r.StatusSucceeded, r.RunningJobs, r.FinishedJobs))
	}
	if notReady > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d ScaledJobs not Ready", notReady))
	}
	return nil
}

// jobTracker follows the Jobs of a namespace with a watch: which are Complete, which have a ready pod.
type jobTracker struct {
	stopOnce sync.Once
	stopFn   func()

	mu              sync.Mutex
	complete, ready map[types.UID]bool
	err             error
}

func startJobTracker(ctx context.Context, e *env, ns string) (*jobTracker, error) {
	jobs := e.setup.BatchV1().Jobs(ns)
	src := benchkit.JobSource{
		List:  func(ctx context.Context, o metav1.ListOptions) (kruntime.Object, error) { return jobs.List(ctx, o) },
		Watch: jobs.Watch,
	}
	t := &jobTracker{complete: map[types.UID]bool{}, ready: map[types.UID]bool{}}
	stop, err := benchkit.WatchJobs(ctx, ns, v1alpha1.LabelScaledJob, src, func(ev watch.Event, _ time.Time) {
		job, ok := ev.Object.(*batchv1.Job)
		if !ok || ev.Type == watch.Deleted {
			return
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		for _, c := range job.Status.Conditions {
			if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
				t.complete[job.UID] = true
			}
		}
		// Only the long-running Jobs count as ready: the others' pods are ready for a moment too.
		if job.Spec.Template.Annotations["kwok.test/run-for"] == "1h" && job.Status.Ready != nil && *job.Status.Ready > 0 {
			t.ready[job.UID] = true
		}
	}, func(err error) {
		t.mu.Lock()
		t.err = err
		t.mu.Unlock()
	})
	if err != nil {
		return nil, err
	}
	t.stopFn = stop
	return t, nil
}

func (t *jobTracker) counts() (complete, ready int, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.complete), len(t.ready), t.err
}

func (t *jobTracker) stop() { t.stopOnce.Do(t.stopFn) }
