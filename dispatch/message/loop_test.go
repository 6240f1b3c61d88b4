package message

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/dispatch/internal/index"
	"github.com/kubedispatch/kubedispatch/jobtemplate"
	"github.com/kubedispatch/kubedispatch/sources"
)

// fakeReceiver records what the loop does to messages.
type fakeReceiver struct {
	mu      sync.Mutex
	calls   []string // "ack <id>", "release <id> <delay>", "dead-letter <id>", "extend <id>"
	reasons map[string]string
	// duringRelease, when set, runs inside Release (a queue that redelivers at once, as Service Bus does).
	duringRelease func(m *sources.Message)
	// failReleases makes that many Release calls fail with a transient error (after recording them).
	failReleases int
}

func (f *fakeReceiver) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}

func (f *fakeReceiver) Receive(context.Context, int, time.Duration, time.Time) ([]sources.Message, error) {
	return nil, nil
}
func (f *fakeReceiver) Extend(_ context.Context, m *sources.Message, now time.Time) (time.Time, error) {
	f.record("extend " + m.ID)
	return now.Add(f.Lease()), nil
}
func (f *fakeReceiver) Ack(_ context.Context, m *sources.Message) error {
	f.record("ack " + m.ID)
	return nil
}
func (f *fakeReceiver) Release(_ context.Context, m *sources.Message, d time.Duration) error {
	f.record("release " + m.ID + " " + d.String())
	if f.duringRelease != nil {
		f.duringRelease(m)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failReleases > 0 {
		f.failReleases--
		return errors.New("connection reset")
	}
	return nil
}
func (f *fakeReceiver) DeadLetter(_ context.Context, m *sources.Message, reason string, _ map[string]string) error {
	f.record("dead-letter " + m.ID)
	f.mu.Lock()
	f.reasons[m.ID] = reason
	f.mu.Unlock()
	return nil
}
func (f *fakeReceiver) Lease() time.Duration { return 30 * time.Second }
func (f *fakeReceiver) Close() error         { return nil }

var testNow = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

type loopEnv struct {
	t     *testing.T
	c     client.Client
	clock *clocktesting.FakeClock
	recv  *fakeReceiver
	l     *loop
	sj    *v1alpha1.ScaledJob
}

func newLoopEnv(t *testing.T, mutate func(*v1alpha1.ScaledJob)) *loopEnv {
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	sj := &v1alpha1.ScaledJob{
		ObjectMeta: metav1.ObjectMeta{Name: "pdf", Namespace: "ns", UID: "uid-pdf", Generation: 1},
		Spec: v1alpha1.ScaledJobSpec{
			MaxReplicaCount: ptr.To[int32](5),
			Dispatch:        &v1alpha1.Dispatch{Mode: v1alpha1.ModeMessage, MaxDeliveries: ptr.To[int32](2), DeadLetter: &v1alpha1.DeadLetter{QueueURL: "http://sqs/1/dlq"}},
			Triggers:        []v1alpha1.ScaleTrigger{{Type: "aws-sqs-queue"}},
			JobTargetRef: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "w", Image: "img"}}}}},
		},
	}
	if mutate != nil {
		mutate(sj)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(sj.DeepCopy()).
		WithIndex(&batchv1.Job{}, index.ScaledJob, index.ScaledJobOf).Build()
	clock := clocktesting.NewFakeClock(testNow)
	cfg := &Config{Client: c, APIReader: c, Clock: clock, Recorder: events.NewFakeRecorder(100), Metrics: NewMetrics(nil)}
	l := &loop{cfg: cfg, nn: types.NamespacedName{Namespace: "ns", Name: "pdf"}, slot: make(chan struct{}, 1),
		settle: make(chan struct{}, 1), held: map[string]*held{}}
	l.setSpec(sj)
	return &loopEnv{t: t, c: c, clock: clock, recv: &fakeReceiver{reasons: map[string]string{}}, l: l, sj: sj}
}

func (e *loopEnv) deliver(id string, attrs map[string]string) {
	e.t.Helper()
	m := sources.Message{ID: id, Queue: "http://sqs/1/q", Body: []byte(`{"n":1}`), Attributes: attrs,
		EnqueuedAt: e.clock.Now(), LeaseUntil: e.clock.Now().Add(30 * time.Second), Handle: "h-" + id}
	if h, fresh := e.l.hold(m); fresh {
		e.l.admit(context.Background(), e.sj, e.recv, h)
	}
}

func (e *loopEnv) jobOf(id string, attempt int32) *batchv1.Job {
	e.t.Helper()
	var j batchv1.Job
	name := jobtemplate.MessageJobName(e.sj, jobtemplate.MessageKey("http://sqs/1/q", id), attempt)
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: "ns", Name: name}, &j); err != nil {
		return nil
	}
	return &j
}

func (e *loopEnv) finish(j *batchv1.Job, typ batchv1.JobConditionType) {
	e.t.Helper()
	j.Status.Conditions = []batchv1.JobCondition{{Type: typ, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "boom",
		LastTransitionTime: metav1.NewTime(e.clock.Now())}}
	if err := e.c.Status().Update(context.Background(), j); err != nil {
		if err := e.c.Update(context.Background(), j); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *loopEnv) takeCalls() []string {
	e.recv.mu.Lock()
	defer e.recv.mu.Unlock()
	out := e.recv.calls
	e.recv.calls = nil
	return out
}

func TestLoopMessageLifecycle(t *testing.T) {
	e := newLoopEnv(t, nil)
	ctx := context.Background()

	// A message becomes one Job with its payload Secret; a duplicate delivery makes no second Job.
	e.deliver("m1", nil)
	e.deliver("m1", nil)
	j := e.jobOf("m1", 1)
	if j == nil {
		t.Fatal("no Job for m1 attempt 1")
	}
	var secret corev1.Secret
	if err := e.c.Get(ctx, types.NamespacedName{Namespace: "ns", Name: j.Name}, &secret); err != nil || string(secret.Data["body"]) != `{"n":1}` {
		t.Errorf("payload Secret: %v %q", err, secret.Data["body"])
	}
	if len(secret.OwnerReferences) != 1 || secret.OwnerReferences[0].Name != j.Name {
		t.Errorf("payload Secret owners %+v, want the Job", secret.OwnerReferences)
	}

	// Unfinished and lease fresh: nothing. Two thirds of the lease gone: renewed.
	e.l.keepOnce(ctx, e.recv)
	e.clock.Step(21 * time.Second)
	e.l.keepOnce(ctx, e.recv)
	if diff := cmp.Diff([]string{"extend m1"}, e.takeCalls()); diff != "" {
		t.Errorf("renewal (-want +got):\n%s", diff)
	}

	// The Job fails: released with the first back-off, outcome recorded on the Job.
	e.finish(j, batchv1.JobFailed)
	e.l.keepOnce(ctx, e.recv)
	if diff := cmp.Diff([]string{"release m1 5s"}, e.takeCalls()); diff != "" {
		t.Errorf("after the first failure (-want +got):\n%s", diff)
	}
	if got := e.jobOf("m1", 1).Annotations[v1alpha1.AnnotationMessageOutcome]; got != v1alpha1.OutcomeReleased {
		t.Errorf("outcome annotation %q, want released", got)
	}

	// Redelivered: attempt 2; it fails too: dead-lettered with the reason (maxDeliveries 2).
	e.deliver("m1", nil)
	j2 := e.jobOf("m1", 2)
	if j2 == nil {
		t.Fatal("no Job for m1 attempt 2")
	}
	e.finish(j2, batchv1.JobFailed)
	e.l.keepOnce(ctx, e.recv)
	if diff := cmp.Diff([]string{"dead-letter m1"}, e.takeCalls()); diff != "" {
		t.Errorf("after the last failure (-want +got):\n%s", diff)
	}
	if want := "all 2 deliveries failed (maxDeliveries 2); last Job " + j2.Name + ": BackoffLimitExceeded: boom"; e.recv.reasons["m1"] != want {
		t.Errorf("dead-letter reason %q, want %q", e.recv.reasons["m1"], want)
	}

	// A message whose Job completes is acked; a redelivery after that acks again without a new Job.
	e.deliver("m2", nil)
	e.finish(e.jobOf("m2", 1), batchv1.JobComplete)
	e.l.keepOnce(ctx, e.recv)
	e.deliver("m2", nil)
	if diff := cmp.Diff([]string{"ack m2", "ack m2"}, e.takeCalls()); diff != "" {
		t.Errorf("complete and redelivered (-want +got):\n%s", diff)
	}
	if e.jobOf("m2", 2) != nil {
		t.Errorf("a completed message got a second Job")
	}
	snap := e.l.snapshot()
	if snap.Acked != 2 || snap.Released != 1 || snap.DeadLettered != 1 || snap.Held != 0 {
		t.Errorf("snapshot %+v, want 2 acked, 1 released, 1 dead-lettered, none held", snap)
	}
}

func TestLoopDeadLettersWhatCannotBecomeAJob(t *testing.T) {
	e := newLoopEnv(t, func(sj *v1alpha1.ScaledJob) {
		sj.Spec.Dispatch.Parameters = []v1alpha1.Parameter{{From: v1alpha1.ParameterSource{Attribute: "customer"}, To: v1alpha1.ParameterTarget{Env: "CUSTOMER"}}}
	})
	e.deliver("m1", nil)
	if diff := cmp.Diff([]string{"dead-letter m1"}, e.takeCalls()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if e.jobOf("m1", 1) != nil {
		t.Errorf("a Job was created for a message missing its parameter")
	}
	e.deliver("m2", map[string]string{"customer": "acme"})
	if j := e.jobOf("m2", 1); j == nil || j.Spec.Template.Spec.Containers[0].Env[len(j.Spec.Template.Spec.Containers[0].Env)-1].Value != "acme" {
		t.Errorf("the message with its parameter did not get its Job with CUSTOMER=acme")
	}
}

// A queue that redelivers a released message at once (Service Bus abandon) can hand it to the receive loop while
// the release call is still in flight: that delivery must become the next attempt, not be merged into the entry
// being let go (which left it unheld until its lock ran out).
func TestLoopRedeliveryDuringRelease(t *testing.T) {
	e := newLoopEnv(t, nil)
	ctx := context.Background()
	e.deliver("m1", nil)
	j := e.jobOf("m1", 1)
	if j == nil {
		t.Fatal("no Job for m1 attempt 1")
	}
	e.recv.duringRelease = func(m *sources.Message) {
		e.recv.duringRelease = nil
		redelivered := sources.Message{ID: m.ID, Queue: m.Queue, Body: m.Body, EnqueuedAt: m.EnqueuedAt,
			LeaseUntil: e.clock.Now().Add(30 * time.Second), Handle: "h-second"}
		if _, fresh := e.l.hold(redelivered); fresh {
			t.Error("the redelivery was taken as a new message while the old entry was still settling")
		}
	}
	e.finish(j, batchv1.JobFailed)
	e.l.keepOnce(ctx, e.recv)
	e.l.admits.Wait()
	if e.jobOf("m1", 2) == nil {
		t.Fatal("the redelivery during the release did not become attempt 2")
	}
	e.l.mu.Lock()
	h := e.l.held[jobtemplate.MessageKey("http://sqs/1/q", "m1")]
	e.l.mu.Unlock()
	if h == nil || h.msg.Handle != "h-second" || h.attempt != 2 {
		t.Errorf("held entry %+v, want the second delivery holding attempt 2", h)
	}
}

func TestLoopReleasesWhatArrivesWhilePaused(t *testing.T) {
	e := newLoopEnv(t, func(sj *v1alpha1.ScaledJob) { sj.Annotations = map[string]string{v1alpha1.AnnotationPaused: "true"} })
	e.deliver("m1", nil)
	if diff := cmp.Diff([]string{"release m1 0s"}, e.takeCalls()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if e.jobOf("m1", 1) != nil {
		t.Errorf("a paused ScaledJob created a Job")
	}
}

func TestLoopRefusesAJobNameTakenByAnotherOwner(t *testing.T) {
	e := newLoopEnv(t, nil)
	name := jobtemplate.MessageJobName(e.sj, jobtemplate.MessageKey("http://sqs/1/q", "m1"), 1)
	other := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}
	if err := e.c.Create(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	e.deliver("m1", nil)
	if diff := cmp.Diff([]string{"dead-letter m1"}, e.takeCalls()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestFreeSlotsCountHeldMessages(t *testing.T) {
	e := newLoopEnv(t, nil)
	for _, id := range []string{"a", "b", "c"} {
		e.deliver(id, nil)
	}
	free, err := e.l.freeSlots(context.Background(), e.sj)
	if err != nil || free != 2 {
		t.Errorf("freeSlots = %d, %v; want 2 (max 5, 3 held with Jobs)", free, err)
	}
}
