package message

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/sources"
)

// waitingReceiver's Receive waits for its context (a long poll that never gets a message).
type waitingReceiver struct{ fakeReceiver }

func (w *waitingReceiver) Receive(ctx context.Context, _ int, _ time.Duration, _ time.Time) ([]sources.Message, error) {
	w.record("receive")
	<-ctx.Done()
	return nil, ctx.Err()
}

func (w *waitingReceiver) receives() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.calls)
}

// receiverBuilds is a programmable NewReceiver: it counts the builds and refuses them while err is set.
type receiverBuilds struct {
	mu     sync.Mutex
	n      int
	err    error
	latest *waitingReceiver
}

func (b *receiverBuilds) build(context.Context, *v1alpha1.ScaledJob) (sources.Receiver, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	if b.err != nil {
		return nil, b.err
	}
	b.latest = &waitingReceiver{fakeReceiver{reasons: map[string]string{}}}
	return b.latest, nil
}

func (b *receiverBuilds) state() (int, *waitingReceiver) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n, b.latest
}

func (b *receiverBuilds) refuse(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.err = err
}

// eventually waits (real time, at most 10 s) until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// startLoops runs Loops with cfg (the client, clock, recorder and logger filled in) and the loop of e's ScaledJob.
// It returns the loops, the ScaledJob's key, and a condition: n receivers built and the latest receiving.
func startLoops(t *testing.T, e *loopEnv, builds *receiverBuilds, cfg Config) (*Loops, string, func(n int) func() bool) {
	t.Helper()
	cfg.Client, cfg.APIReader, cfg.Clock, cfg.Recorder, cfg.Log = e.c, e.c, e.clock, events.NewFakeRecorder(100), logr.Discard()
	ls := NewLoops(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = ls.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, "the loops to start", func() bool { return ls.Ensure(e.sj) })
	receiving := func(n int) func() bool {
		return func() bool {
			got, r := builds.state()
			return got == n && r != nil && r.receives() > 0
		}
	}
	return ls, e.sj.Namespace + "/" + e.sj.Name, receiving
}

// Rebuild ends the receiver in use and builds a new one at once; a refused build wakes the ScaledJob with the
// refusal in its snapshot and receives nothing; a Rebuild then cuts the build back-off short (no clock step here),
// and the working build clears the refusal and wakes the ScaledJob again.
func TestLoopsRebuild(t *testing.T) {
	e := newLoopEnv(t, nil)
	builds := &receiverBuilds{}
	wake := make(chan event.GenericEvent, 10)
	ls, key, receiving := startLoops(t, e, builds, Config{NewReceiver: builds.build, Wake: wake})
	eventually(t, "the first receiver to receive", receiving(1))
	_, first := builds.state()

	if !ls.Rebuild(key) {
		t.Fatalf("Rebuild(%s) = false with a loop running", key)
	}
	eventually(t, "a second receiver to receive", receiving(2))

	builds.refuse(errors.New(`authenticationRef: ClusterTriggerAuthentication "shared" does not allow namespace ns`))
	ls.Rebuild(key)
	select {
	case ev := <-wake:
		if ev.Object.GetName() != e.sj.Name {
			t.Errorf("woke %s, want %s", ev.Object.GetName(), e.sj.Name)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the refused build did not wake the ScaledJob")
	}
	if s := ls.Snapshot(key); !strings.Contains(s.ReceiveErr, `building the receiver: authenticationRef: ClusterTriggerAuthentication "shared" does not allow namespace ns`) {
		t.Errorf("ReceiveErr = %q, want the refusal", s.ReceiveErr)
	}
	if n, _ := builds.state(); n != 3 {
		t.Errorf("%d builds, want 3", n)
	}

	builds.refuse(nil)
	ls.Rebuild(key) // during the 1 s back-off, which the fake clock never ends on its own
	eventually(t, "a receiver built again at once", receiving(4))
	// The refusal leaves the status as soon as the build works, not when the first long poll returns (never, here).
	if s := ls.Snapshot(key); s.ReceiveErr != "" {
		t.Errorf("ReceiveErr = %q once the receiver is built again, want none", s.ReceiveErr)
	}
	select {
	case <-wake:
	case <-time.After(10 * time.Second):
		t.Fatal("the working build did not wake the ScaledJob")
	}
	if receives := first.receives(); receives != 1 {
		t.Errorf("the first receiver received %d times, want once (it was closed by the first rebuild)", receives)
	}

	if ls.Rebuild("ns/none") {
		t.Errorf("Rebuild of a ScaledJob without a loop = true")
	}
}

// With a Fingerprint, Rebuild keeps the receiver in use (and its long poll) when the resolved configuration is
// unchanged, and rebuilds when it changed or no longer resolves.
func TestLoopsRebuildOnlyWhenTheConfigurationChanged(t *testing.T) {
	e := newLoopEnv(t, nil)
	builds := &receiverBuilds{}
	var mu sync.Mutex
	fp, fpErr, checks := "v1", error(nil), 0
	fingerprint := func(context.Context, *v1alpha1.ScaledJob) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		checks++
		return fp, fpErr
	}
	set := func(v string, err error) {
		mu.Lock()
		defer mu.Unlock()
		fp, fpErr = v, err
	}
	checked := func() int {
		mu.Lock()
		defer mu.Unlock()
		return checks
	}
	ls, key, receiving := startLoops(t, e, builds,
		Config{NewReceiver: builds.build, Fingerprint: fingerprint, Wake: make(chan event.GenericEvent, 100)})
	eventually(t, "the first receiver to receive", receiving(1))

	before := checked()
	ls.Rebuild(key)
	eventually(t, "the configuration to be checked", func() bool { return checked() > before })
	if n, _ := builds.state(); n != 1 {
		t.Fatalf("%d builds after an edit that changed nothing, want 1", n)
	}

	set("v2", nil)
	ls.Rebuild(key)
	eventually(t, "a receiver built for the changed configuration", receiving(2))

	set("", errors.New(`ClusterTriggerAuthentication "shared" does not allow namespace ns`))
	ls.Rebuild(key)
	eventually(t, "a rebuild for a configuration that no longer resolves", func() bool { n, _ := builds.state(); return n == 3 })
}

// refusingReceiver's Receive says the queue refused the credentials.
type refusingReceiver struct{ fakeReceiver }

func (r *refusingReceiver) Receive(context.Context, int, time.Duration, time.Time) ([]sources.Message, error) {
	r.record("receive")
	return nil, fmt.Errorf("reading the queue: %w", sources.ErrUnauthorized)
}

// A queue that refuses the credentials gets a new receiver after a back-off on the clock, not in a tight loop, and
// the refusal reaches status.
func TestLoopBacksOffAfterRefusedCredentials(t *testing.T) {
	e := newLoopEnv(t, nil)
	var mu sync.Mutex
	built := 0
	build := func(context.Context, *v1alpha1.ScaledJob) (sources.Receiver, error) {
		mu.Lock()
		defer mu.Unlock()
		built++
		return &refusingReceiver{fakeReceiver{reasons: map[string]string{}}}, nil
	}
	builds := func() int {
		mu.Lock()
		defer mu.Unlock()
		return built
	}
	ls, key, _ := startLoops(t, e, &receiverBuilds{}, Config{NewReceiver: build, Wake: make(chan event.GenericEvent, 100)})
	eventually(t, "the refusal in status", func() bool { return strings.Contains(ls.Snapshot(key).ReceiveErr, "credentials refused") })
	// Each new receiver comes only once the fake clock has moved past the back-off (1 s, 2 s, 4 s): a tight loop
	// would build thousands without the clock moving at all.
	start := e.clock.Now()
	for n := 1; n <= 3; n++ {
		eventually(t, fmt.Sprintf("receiver %d", n+1), func() bool {
			e.clock.Step(250 * time.Millisecond)
			return builds() >= n+1
		})
	}
	if got := builds(); got > 5 {
		t.Errorf("%d receivers built, want 4 (one per back-off)", got)
	}
	if moved := e.clock.Since(start); moved < 6*time.Second {
		t.Errorf("4 receivers built after the clock moved %v, want at least the 1+2+4 s of back-off", moved)
	}
}
