package dispatch

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/dispatch/internal/index"
	"github.com/kubedispatch/kubedispatch/jobtemplate"
	"github.com/kubedispatch/kubedispatch/sources"
)

// Fixtures for the loop tests in controller_test.go: a ScaledJob builder, a Job builder, a programmable fake
// trigger source and a test environment around the controller-runtime fake client.

const (
	testNamespace = "team-a"
	// fakeType is the trigger type the fake sources are registered under.
	fakeType = "fake-queue"
	// defaultTrigger is the name of the trigger makeSJ adds.
	defaultTrigger = "queue"
)

// testNow is the fake clock's start: whole seconds, so times survive the JSON round trip of the fake client.
var testNow = time.Date(2026, time.March, 14, 9, 30, 0, 0, time.UTC)

// sjBuilder builds ScaledJobs: makeSJ("etl").max(10).strategy("accurate").paused().obj().
type sjBuilder struct{ sj v1alpha1.ScaledJob }

// makeSJ returns a valid ScaledJob in testNamespace with generation 1, one container and one fake trigger named
// defaultTrigger.
func makeSJ(name string) *sjBuilder {
	return &sjBuilder{sj: v1alpha1.ScaledJob{
		TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ScaledJob"},
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: testNamespace, UID: types.UID("uid-" + name), Generation: 1,
		},
		Spec: v1alpha1.ScaledJobSpec{
			JobTargetRef: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "worker", Image: "registry.example/worker:1"}},
			}}},
			Triggers: []v1alpha1.ScaleTrigger{{Type: fakeType, Name: defaultTrigger}},
		},
	}}
}

func (b *sjBuilder) max(n int32) *sjBuilder { b.sj.Spec.MaxReplicaCount = ptr.To(n); return b }
func (b *sjBuilder) min(n int32) *sjBuilder { b.sj.Spec.MinReplicaCount = ptr.To(n); return b }
func (b *sjBuilder) poll(s int32) *sjBuilder {
	b.sj.Spec.PollingInterval = ptr.To(s)
	return b
}
func (b *sjBuilder) generation(g int64) *sjBuilder { b.sj.Generation = g; return b }

func (b *sjBuilder) strategy(s string) *sjBuilder {
	b.sj.Spec.ScalingStrategy.Strategy = s
	return b
}

func (b *sjBuilder) history(successful, failed int32) *sjBuilder {
	b.sj.Spec.SuccessfulJobsHistoryLimit = ptr.To(successful)
	b.sj.Spec.FailedJobsHistoryLimit = ptr.To(failed)
	return b
}

func (b *sjBuilder) rollout(strategy, propagation string) *sjBuilder {
	b.sj.Spec.Rollout = &v1alpha1.Rollout{Strategy: strategy, PropagationPolicy: propagation}
	return b
}

// triggers replaces the triggers.
func (b *sjBuilder) triggers(ts ...v1alpha1.ScaleTrigger) *sjBuilder {
	b.sj.Spec.Triggers = ts
	return b
}

// authRef points the first trigger at a TriggerAuthentication.
func (b *sjBuilder) authRef(name string) *sjBuilder {
	b.sj.Spec.Triggers[0].AuthenticationRef = &v1alpha1.AuthenticationRef{Name: name}
	return b
}

func (b *sjBuilder) paused() *sjBuilder {
	if b.sj.Annotations == nil {
		b.sj.Annotations = map[string]string{}
	}
	b.sj.Annotations[v1alpha1.AnnotationPaused] = "true"
	return b
}

// mutate applies an arbitrary change, for specs the builder has no method for.
func (b *sjBuilder) mutate(f func(*v1alpha1.ScaledJob)) *sjBuilder { f(&b.sj); return b }

func (b *sjBuilder) obj() *v1alpha1.ScaledJob { return b.sj.DeepCopy() }

// jobFixture builds Jobs the way the dispatcher does (jobtemplate.Build), then changes their state.
type jobFixture struct{ j *batchv1.Job }

// makeJob returns an unfinished Job of sj named name, created an hour before testNow.
func makeJob(t *testing.T, sj *v1alpha1.ScaledJob, name string) *jobFixture {
	t.Helper()
	j, err := jobtemplate.Build(sj, name)
	if err != nil {
		t.Fatalf("building job %s: %v", name, err)
	}
	j.CreationTimestamp = metav1.NewTime(testNow.Add(-time.Hour))
	j.Status.StartTime = ptr.To(j.CreationTimestamp)
	return &jobFixture{j: j}
}

// createdAt sets the creation (and start) time.
func (f *jobFixture) createdAt(at time.Time) *jobFixture {
	f.j.CreationTimestamp = metav1.NewTime(at)
	f.j.Status.StartTime = ptr.To(metav1.NewTime(at))
	return f
}

// completeAt finishes the Job successfully as the Job controller does: SuccessCriteriaMet then Complete, and a
// completionTime.
func (f *jobFixture) completeAt(at time.Time) *jobFixture {
	t := metav1.NewTime(at)
	f.j.Status.Conditions = []batchv1.JobCondition{
		{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: t, LastProbeTime: t},
		{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: t, LastProbeTime: t},
	}
	f.j.Status.CompletionTime = &t
	f.j.Status.Succeeded = 1
	return f
}

// failedAt fails the Job as the Job controller does: FailureTarget then Failed, and no completionTime.
func (f *jobFixture) failedAt(at time.Time) *jobFixture {
	t := metav1.NewTime(at)
	f.j.Status.Conditions = []batchv1.JobCondition{
		{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", LastTransitionTime: t, LastProbeTime: t},
		{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", LastTransitionTime: t, LastProbeTime: t},
	}
	f.j.Status.Failed = 7
	return f
}

// jobGeneration sets the generation annotation.
func (f *jobFixture) jobGeneration(g string) *jobFixture {
	f.j.Annotations[v1alpha1.AnnotationGeneration] = g
	return f
}

// noGeneration drops the generation annotation (a Job made by something else, e.g. KEDA).
func (f *jobFixture) noGeneration() *jobFixture {
	delete(f.j.Annotations, v1alpha1.AnnotationGeneration)
	return f
}

// unowned drops the owner reference: the Job only carries the ScaledJob label.
func (f *jobFixture) unowned() *jobFixture {
	f.j.OwnerReferences = nil
	return f
}

// ownedByUID makes another object with that UID the Job's controller.
func (f *jobFixture) ownedByUID(uid string) *jobFixture {
	f.j.OwnerReferences[0].UID = types.UID(uid)
	return f
}

func (f *jobFixture) obj() *batchv1.Job { return f.j.DeepCopy() }

// fakeSource is one trigger's programmable Source. It records its calls.
type fakeSource struct {
	mu       sync.Mutex
	value    float64
	target   float64
	err      error
	calls    int
	closed   int
	buildErr error
}

// set programs the next readings: value with target 1 (active when value > 0), or err.
func (s *fakeSource) set(value float64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.value, s.target, s.err = value, 1, err
}

// Backlog implements sources.Source.
func (s *fakeSource) Backlog(_ context.Context, now time.Time) (sources.Backlog, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.err != nil {
		return sources.Backlog{}, s.err
	}
	return sources.Backlog{Value: s.value, Target: s.target, Active: s.value > 0, SampledAt: now}, nil
}

// Close implements sources.Source.
func (s *fakeSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed++
	return nil
}

func (s *fakeSource) stats() (calls, closed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, s.closed
}

// fakeSources is the factory registered under fakeType: it hands out one fakeSource per trigger name and records
// every configuration it was asked to build.
type fakeSources struct {
	mu     sync.Mutex
	byName map[string]*fakeSource
	built  []sources.Config
}

func newFakeSources() *fakeSources { return &fakeSources{byName: map[string]*fakeSource{}} }

// source returns the fake source of the trigger named name, creating it (backlog 0, target 1).
func (f *fakeSources) source(name string) *fakeSource {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.byName[name]
	if !ok {
		s = &fakeSource{target: 1}
		f.byName[name] = s
	}
	return s
}

func (f *fakeSources) factory(_ context.Context, cfg sources.Config) (sources.Source, error) {
	s := f.source(cfg.Name)
	f.mu.Lock()
	f.built = append(f.built, cfg)
	f.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buildErr != nil {
		return nil, s.buildErr
	}
	return s, nil
}

// builds returns the configurations built so far.
func (f *fakeSources) builds() []sources.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.built)
}

// loopEnv is a Reconciler on a fake client, with a fake clock, recorder and sources.
type loopEnv struct {
	t       *testing.T
	raw     client.WithWatch // the store itself, for assertions: never intercepted
	r       *Reconciler
	clock   *clocktesting.FakeClock
	events  *events.FakeRecorder
	sources *fakeSources
}

// newLoopEnv builds the environment. funcs intercept the Reconciler's client only (and its APIReader).
func newLoopEnv(t *testing.T, funcs interceptor.Funcs, objs ...client.Object) *loopEnv {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	raw := fake.NewClientBuilder().WithScheme(scheme).
		WithStatusSubresource(&v1alpha1.ScaledJob{}).
		WithIndex(&batchv1.Job{}, index.ScaledJob, index.ScaledJobOf).
		WithIndex(&corev1.Pod{}, index.ScaledJob, index.ScaledJobOf).
		WithIndex(&v1alpha1.ScaledJob{}, index.TriggerAuthentication, index.TriggerAuthenticationsOf).
		WithIndex(&v1alpha1.ScaledJob{}, index.ClusterTriggerAuthentication, index.ClusterTriggerAuthenticationsOf).
		WithObjects(objs...).
		Build()
	c := interceptor.NewClient(raw, funcs)
	srcs := newFakeSources()
	reg := sources.NewRegistry()
	if err := reg.Register(fakeType, srcs.factory); err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	e := &loopEnv{
		t:       t,
		raw:     raw,
		clock:   clocktesting.NewFakeClock(testNow),
		events:  events.NewFakeRecorder(1000),
		sources: srcs,
	}
	e.r = &Reconciler{
		Client:               c,
		APIReader:            c,
		Registry:             reg,
		Clock:                e.clock,
		Recorder:             e.events,
		Metrics:              NewMetrics(nil),
		ClusterAuthNamespace: "kubedispatch-system",
		NameSuffix:           func() string { return fmt.Sprintf("%05d", n.Add(1)) },
	}
	return e
}

// newReconciler returns a second Reconciler on the same client and fakes, with its own (empty) memory, as after
// a restart of the dispatcher.
func (e *loopEnv) newReconciler() *Reconciler {
	return &Reconciler{
		Client: e.r.Client, APIReader: e.r.APIReader, Registry: e.r.Registry, Clock: e.clock, Recorder: e.events,
		Metrics: NewMetrics(nil), NameSuffix: e.r.NameSuffix,
	}
}

// reconcile runs one tick for the ScaledJob name.
// Like the dispatcher's poller, it first reads the triggers (synchronously here) into the readings store.
func (e *loopEnv) reconcile(name string) (ctrl.Result, error) {
	e.t.Helper()
	ctx := context.Background()
	nn := types.NamespacedName{Namespace: testNamespace, Name: name}
	e.r.init()
	var sj v1alpha1.ScaledJob
	if err := e.r.Client.Get(ctx, nn, &sj); err == nil {
		e.r.pollers.PollNow(ctx, &sj)
	}
	return e.r.Reconcile(ctx, ctrl.Request{NamespacedName: nn})
}

// mustReconcile runs one tick and fails the test on an error.
func (e *loopEnv) mustReconcile(name string) ctrl.Result {
	e.t.Helper()
	res, err := e.reconcile(name)
	if err != nil {
		e.t.Fatalf("Reconcile(%s) = %v, want no error", name, err)
	}
	return res
}

// scaledJob reads a ScaledJob back from the store.
func (e *loopEnv) scaledJob(name string) *v1alpha1.ScaledJob {
	e.t.Helper()
	var sj v1alpha1.ScaledJob
	if err := e.raw.Get(context.Background(), types.NamespacedName{Namespace: testNamespace, Name: name}, &sj); err != nil {
		e.t.Fatalf("reading ScaledJob %s: %v", name, err)
	}
	return &sj
}

// update changes a ScaledJob in the store.
func (e *loopEnv) update(name string, f func(*v1alpha1.ScaledJob)) {
	e.t.Helper()
	sj := e.scaledJob(name)
	f(sj)
	if err := e.raw.Update(context.Background(), sj); err != nil {
		e.t.Fatalf("updating ScaledJob %s: %v", name, err)
	}
}

// jobs lists every Job in testNamespace, sorted by name.
func (e *loopEnv) jobs() []batchv1.Job {
	e.t.Helper()
	var list batchv1.JobList
	if err := e.raw.List(context.Background(), &list, client.InNamespace(testNamespace)); err != nil {
		e.t.Fatalf("listing jobs: %v", err)
	}
	slices.SortFunc(list.Items, func(a, b batchv1.Job) int { return strings.Compare(a.Name, b.Name) })
	return list.Items
}

// jobNames lists the names of every Job in testNamespace, sorted.
func (e *loopEnv) jobNames() []string {
	e.t.Helper()
	var names []string
	for _, j := range e.jobs() {
		names = append(names, j.Name)
	}
	return names
}

// drainEvents returns the events recorded since the last call, as "<type> <reason> <note>".
func (e *loopEnv) drainEvents() []string {
	var out []string
	for {
		select {
		case ev := <-e.events.Events:
			out = append(out, ev)
		default:
			return out
		}
	}
}

// eventsWithReason keeps the events of one type and reason.
func eventsWithReason(evs []string, typ, reason string) []string {
	var out []string
	for _, ev := range evs {
		if strings.HasPrefix(ev, typ+" "+reason+" ") {
			out = append(out, ev)
		}
	}
	return out
}

// conditionSummary is the part of a condition the tests compare.
type conditionSummary struct {
	Status metav1.ConditionStatus
	Reason string
}

// condition returns a condition's status and reason, and its message.
func condition(sj *v1alpha1.ScaledJob, typ string) (conditionSummary, string) {
	c := apimeta.FindStatusCondition(sj.Status.Conditions, typ)
	if c == nil {
		return conditionSummary{}, ""
	}
	return conditionSummary{Status: c.Status, Reason: c.Reason}, c.Message
}

// triggerAuth is a TriggerAuthentication in testNamespace with one secretTargetRef.
func triggerAuth(name, parameter, secret, key string) *v1alpha1.TriggerAuthentication {
	return &v1alpha1.TriggerAuthentication{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace},
		Spec: v1alpha1.TriggerAuthenticationSpec{SecretTargetRef: []v1alpha1.SecretTargetRef{
			{Parameter: parameter, Name: secret, Key: key},
		}},
	}
}
