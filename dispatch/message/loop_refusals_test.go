package message

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/kubedispatch/kubedispatch/dispatch/internal/apilimit"
	"github.com/kubedispatch/kubedispatch/jobtemplate"
	"github.com/kubedispatch/kubedispatch/sources"
)

// recorder replaces the loop's recorder with a fake one, wrapped as NewLoops wraps the real one.
func (e *loopEnv) recorder() *events.FakeRecorder {
	rec := events.NewFakeRecorder(100)
	e.l.cfg.Recorder = apilimit.Recorder(rec)
	return rec
}

// refuseJobCreates makes the API server answer every Job create with err (Secrets and the rest pass).
func (e *loopEnv) refuseJobCreates(err error) {
	e.l.cfg.Client = interceptor.NewClient(e.c.(client.WithWatch), interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*batchv1.Job); ok {
				return err
			}
			return c.Create(ctx, obj, opts...)
		},
	})
}

// deliverBody holds and admits a message with the given body.
func (e *loopEnv) deliverBody(id string, body []byte) {
	e.t.Helper()
	m := sources.Message{ID: id, Queue: "http://sqs/1/q", Body: body, EnqueuedAt: e.clock.Now(),
		LeaseUntil: e.clock.Now().Add(30 * time.Second), Handle: "h-" + id}
	if h, fresh := e.l.hold(m); fresh {
		e.l.admit(context.Background(), e.sj, e.recv, h)
	}
}

// objectCounts returns how many Jobs and Secrets the namespace has.
func (e *loopEnv) objectCounts() (jobs, secrets int) {
	e.t.Helper()
	var jl batchv1.JobList
	var sl corev1.SecretList
	if err := e.c.List(context.Background(), &jl, client.InNamespace("ns")); err != nil {
		e.t.Fatal(err)
	}
	if err := e.c.List(context.Background(), &sl, client.InNamespace("ns")); err != nil {
		e.t.Fatal(err)
	}
	return len(jl.Items), len(sl.Items)
}

// takeEvents drains the fake recorder.
func takeEvents(rec *events.FakeRecorder) []string {
	var out []string
	for {
		select {
		case ev := <-rec.Events:
			out = append(out, ev)
		default:
			return out
		}
	}
}

func (e *loopEnv) messageCount(action string) float64 {
	return testutil.ToFloat64(e.l.cfg.Metrics.Messages.WithLabelValues("ns", "pdf", action))
}

// A body larger than a Secret can hold never becomes a Job: it is dead-lettered at once, the reason naming its
// size and the limit, with the MessageDeadLettered event; nothing is created and nothing stays held.
func TestLoopDeadLettersAnOversizedBody(t *testing.T) {
	e := newLoopEnv(t, nil)
	rec := e.recorder()

	// Exactly at the limit is fine.
	e.deliverBody("fits", make([]byte, jobtemplate.MaxPayloadBytes))
	if e.jobOf("fits", 1) == nil {
		t.Fatalf("a body of exactly %d bytes got no Job", jobtemplate.MaxPayloadBytes)
	}
	e.takeCalls()

	over := jobtemplate.MaxPayloadBytes + 1
	e.deliverBody("big", make([]byte, over))
	if diff := cmp.Diff([]string{"dead-letter big"}, e.takeCalls()); diff != "" {
		t.Errorf("queue calls (-want +got):\n%s", diff)
	}
	reason := e.recv.reasons["big"]
	for _, want := range []string{"the message cannot become a Job", jobtemplate.ErrPayloadTooLarge.Error(),
		strconv.Itoa(over) + " bytes", "the limit is " + strconv.Itoa(jobtemplate.MaxPayloadBytes)} {
		if !strings.Contains(reason, want) {
			t.Errorf("dead-letter reason %q lacks %q", reason, want)
		}
	}
	if e.jobOf("big", 1) != nil {
		t.Error("an oversized message got a Job")
	}
	if jobs, secrets := e.objectCounts(); jobs != 1 || secrets != 1 {
		t.Errorf("%d Jobs and %d Secrets, want only the fitting message's one of each", jobs, secrets)
	}
	if diff := cmp.Diff([]string{"Warning " + ReasonDeadLettered + " message big: " + reason}, takeEvents(rec)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	snap := e.l.snapshot()
	if snap.DeadLettered != 1 || snap.LastDeadLetter != reason || snap.Held != 1 {
		t.Errorf("snapshot %+v, want 1 dead-lettered with its reason and only the fitting message held", snap)
	}
	if got := e.messageCount("dead_lettered"); got != 1 {
		t.Errorf("dead_lettered counter %v, want 1", got)
	}
}

// The API server's answer to the Job create decides: Invalid and BadRequest are about the Job itself and
// dead-letter the message with the API's reason; Forbidden (quota, admission policy, RBAC, a terminating
// namespace) and transient errors may pass later and hand the message back after retryReleaseDelay, using no
// attempt and emitting no event.
func TestLoopJobCreateRefusals(t *testing.T) {
	jobGR := schema.GroupResource{Group: "batch", Resource: "jobs"}
	cases := map[string]struct {
		err        error
		wantCalls  []string
		deadLetter bool
	}{
		"invalid": {
			err: apierrors.NewInvalid(batchv1.SchemeGroupVersion.WithKind("Job").GroupKind(), "pdf-x",
				field.ErrorList{field.Invalid(field.NewPath("spec", "template", "spec", "containers").Index(0).Child("image"), "", "must not be empty")}),
			wantCalls:  []string{"dead-letter m1"},
			deadLetter: true,
		},
		"bad request": {
			err:        apierrors.NewBadRequest("the Job's JSON does not decode"),
			wantCalls:  []string{"dead-letter m1"},
			deadLetter: true,
		},
		"forbidden": {
			err:       apierrors.NewForbidden(jobGR, "pdf-x", errors.New(`exceeded quota: jobs, requested: count/jobs.batch=1`)),
			wantCalls: []string{"release m1 " + retryReleaseDelay.String()},
		},
		"throttled": {
			err:       apierrors.NewTooManyRequests("slow down", 1),
			wantCalls: []string{"release m1 " + retryReleaseDelay.String()},
		},
		"unreachable": {
			err:       errors.New("dial tcp: connection refused"),
			wantCalls: []string{"release m1 " + retryReleaseDelay.String()},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e := newLoopEnv(t, nil)
			rec := e.recorder()
			e.refuseJobCreates(tc.err)
			e.deliver("m1", nil)
			if diff := cmp.Diff(tc.wantCalls, e.takeCalls()); diff != "" {
				t.Errorf("queue calls (-want +got):\n%s", diff)
			}
			if jobs, secrets := e.objectCounts(); jobs != 0 || secrets != 0 {
				t.Errorf("%d Jobs and %d Secrets, want none", jobs, secrets)
			}
			snap := e.l.snapshot()
			gotEvents := takeEvents(rec)
			if tc.deadLetter {
				want := "the API server refused the message's Job: " + tc.err.Error()
				if got := e.recv.reasons["m1"]; got != want {
					t.Errorf("dead-letter reason %q, want %q", got, want)
				}
				if diff := cmp.Diff([]string{"Warning " + ReasonDeadLettered + " message m1: " + want}, gotEvents); diff != "" {
					t.Errorf("events (-want +got):\n%s", diff)
				}
				if snap.DeadLettered != 1 || snap.Released != 0 || snap.LastDeadLetter != want {
					t.Errorf("snapshot %+v, want 1 dead-lettered with the API's reason", snap)
				}
			} else {
				if len(gotEvents) != 0 {
					t.Errorf("events %q, want none for a message handed back", gotEvents)
				}
				if snap.DeadLettered != 0 || snap.Released != 1 || snap.LastDeadLetter != "" {
					t.Errorf("snapshot %+v, want 1 released, none dead-lettered", snap)
				}
			}
			if snap.Held != 0 {
				t.Errorf("%d messages still held, want none", snap.Held)
			}
		})
	}
}

// Once the API server accepts Jobs again, a message handed back for a Forbidden create gets attempt 1: the
// refusal used no attempt.
func TestLoopForbiddenCreateUsesNoAttempt(t *testing.T) {
	e := newLoopEnv(t, nil)
	e.refuseJobCreates(apierrors.NewForbidden(schema.GroupResource{Group: "batch", Resource: "jobs"}, "x", errors.New("quota")))
	e.deliver("m1", nil)
	e.l.cfg.Client = e.c
	e.deliver("m1", nil)
	if e.jobOf("m1", 1) == nil {
		t.Fatal("the redelivery after a Forbidden create did not get attempt 1")
	}
	if diff := cmp.Diff([]string{"release m1 " + retryReleaseDelay.String()}, e.takeCalls()); diff != "" {
		t.Errorf("queue calls (-want +got):\n%s", diff)
	}
}

// The snapshot the status is written from: held messages and the oldest one's enqueue time, counters that move
// with each settle and start from the status's totals.
func TestLoopSnapshotTracksHeldAndSettled(t *testing.T) {
	e := newLoopEnv(t, nil)
	ctx := context.Background()
	e.l.totals = Totals{Acked: 10, Released: 4, DeadLettered: 2, LastDeadLetter: "an older one"}
	if snap := e.l.snapshot(); !snap.OldestHeld.IsZero() || snap.Held != 0 {
		t.Errorf("snapshot %+v, want nothing held and no oldest time", snap)
	}

	first := e.clock.Now()
	e.deliver("m1", nil)
	e.clock.Step(time.Minute)
	e.deliver("m2", nil)
	if snap := e.l.snapshot(); snap.Held != 2 || !snap.OldestHeld.Equal(first) {
		t.Errorf("snapshot %+v, want 2 held, the oldest enqueued at %v", snap, first)
	}

	// m1 completes: acked, and the oldest held is now m2.
	e.finish(e.jobOf("m1", 1), batchv1.JobComplete)
	e.l.keepOnce(ctx, e.recv)
	if snap := e.l.snapshot(); snap.Held != 1 || snap.Acked != 11 || !snap.OldestHeld.Equal(first.Add(time.Minute)) {
		t.Errorf("snapshot %+v, want 1 held (m2), 11 acked", snap)
	}

	// m2 fails twice (maxDeliveries 2): released, then dead-lettered; nothing held, no oldest time.
	e.finish(e.jobOf("m2", 1), batchv1.JobFailed)
	e.l.keepOnce(ctx, e.recv)
	e.deliver("m2", nil)
	e.finish(e.jobOf("m2", 2), batchv1.JobFailed)
	e.l.keepOnce(ctx, e.recv)
	snap := e.l.snapshot()
	want := Totals{Acked: 11, Released: 5, DeadLettered: 3, LastDeadLetter: e.recv.reasons["m2"]}
	if diff := cmp.Diff(want, snap.Totals); diff != "" {
		t.Errorf("totals (-want +got):\n%s", diff)
	}
	if snap.Held != 0 || !snap.OldestHeld.IsZero() {
		t.Errorf("snapshot %+v, want nothing held", snap)
	}
	for action, n := range map[string]float64{"received": 3, "acked": 1, "released": 1, "dead_lettered": 1} {
		if got := e.messageCount(action); got != n {
			t.Errorf("%s counter %v, want %v", action, got, n)
		}
	}
}

// A release that fails is retried by the keeper with the delay it first asked for: a message handed back for a
// Forbidden create stays away for retryReleaseDelay even when the first release call failed.
func TestLoopRetriedReleaseKeepsItsDelay(t *testing.T) {
	e := newLoopEnv(t, nil)
	e.refuseJobCreates(apierrors.NewForbidden(schema.GroupResource{Group: "batch", Resource: "jobs"}, "x", errors.New("quota")))
	e.recv.failReleases = 1
	e.deliver("m1", nil)
	e.l.keepOnce(context.Background(), e.recv)
	want := []string{"release m1 " + retryReleaseDelay.String(), "release m1 " + retryReleaseDelay.String()}
	if diff := cmp.Diff(want, e.takeCalls()); diff != "" {
		t.Errorf("queue calls (-want +got):\n%s", diff)
	}
	if snap := e.l.snapshot(); snap.Held != 0 || snap.Released != 1 {
		t.Errorf("snapshot %+v, want the message released once and no longer held", snap)
	}
}
