package dispatch

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/sources"
)

func TestRelabelAffects(t *testing.T) {
	selector := func(name string, names ...string) v1alpha1.ClusterTriggerAuthentication {
		return *clusterAuth(name, &v1alpha1.AllowedNamespaces{Names: names,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "etl"}}})
	}
	ctas := []v1alpha1.ClusterTriggerAuthentication{
		selector("etl-by-label"),
		selector("etl-also-by-name", testNamespace),
		*clusterAuth("by-name-only", &v1alpha1.AllowedNamespaces{Names: []string{testNamespace}}),
		*clusterAuth("none", nil),
		*clusterAuth("every-namespace", &v1alpha1.AllowedNamespaces{NamespaceSelector: &metav1.LabelSelector{}}),
		selector("another-etl-by-label"),
	}
	etl, web := map[string]string{"team": "etl"}, map[string]string{"team": "web"}
	cases := map[string]struct {
		before, after map[string]string
		want          []string
	}{
		"the namespace leaves the selector": {
			before: etl, after: web,
			want: []string{"another-etl-by-label", "etl-by-label"},
		},
		"the namespace joins the selector": {
			before: nil, after: etl,
			want: []string{"another-etl-by-label", "etl-by-label"},
		},
		"an unrelated label changes nothing": {
			before: etl, after: map[string]string{"team": "etl", "cost-center": "42"},
		},
		"relabelled but still not selected": {before: web, after: map[string]string{"team": "ops"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := relabelAffects(ctas, testNamespace, tc.before, tc.after)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("relabelAffects (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScaledJobsUsing(t *testing.T) {
	inNamespace := func(ns string) func(*v1alpha1.ScaledJob) {
		return func(sj *v1alpha1.ScaledJob) { sj.Namespace = ns }
	}
	withRefs := func(refs ...*v1alpha1.AuthenticationRef) func(*v1alpha1.ScaledJob) {
		return func(sj *v1alpha1.ScaledJob) {
			sj.Spec.Triggers = nil
			for i, ref := range refs {
				sj.Spec.Triggers = append(sj.Spec.Triggers, v1alpha1.ScaleTrigger{Type: fakeType, Name: string(rune('a' + i)), AuthenticationRef: ref})
			}
		}
	}
	ta := func(name string) *v1alpha1.AuthenticationRef { return &v1alpha1.AuthenticationRef{Name: name} }
	cta := func(name string) *v1alpha1.AuthenticationRef {
		return &v1alpha1.AuthenticationRef{Name: name, Kind: v1alpha1.KindClusterTriggerAuthentication}
	}
	objs := []client.Object{
		makeSJ("etl").mutate(withRefs(ta("keys"), cta("shared"))).obj(),
		makeSJ("pdf").mutate(withRefs(ta("other"))).obj(),
		makeSJ("plain").obj(),
		makeSJ("web").mutate(inNamespace("team-b")).mutate(withRefs(nil, ta("keys"), cta("shared"))).obj(),
		makeSJ("cron").mutate(inNamespace("team-b")).mutate(withRefs(cta("other-shared"))).obj(),
	}
	env := newLoopEnv(t, interceptor.Funcs{}, objs...)
	cases := map[string]struct {
		kind, namespace, name string
		want                  []types.NamespacedName
	}{
		"a TriggerAuthentication serves its own namespace only": {
			kind: v1alpha1.KindTriggerAuthentication, namespace: testNamespace, name: "keys",
			want: []types.NamespacedName{{Namespace: testNamespace, Name: "etl"}},
		},
		"the same name in another namespace is another TriggerAuthentication": {
			kind: v1alpha1.KindTriggerAuthentication, namespace: "team-b", name: "keys",
			want: []types.NamespacedName{{Namespace: "team-b", Name: "web"}},
		},
		"a ClusterTriggerAuthentication serves every namespace": {
			kind: v1alpha1.KindClusterTriggerAuthentication, name: "shared",
			want: []types.NamespacedName{{Namespace: testNamespace, Name: "etl"}, {Namespace: "team-b", Name: "web"}},
		},
		"a ClusterTriggerAuthentication's users in one namespace": {
			kind: v1alpha1.KindClusterTriggerAuthentication, namespace: "team-b", name: "shared",
			want: []types.NamespacedName{{Namespace: "team-b", Name: "web"}},
		},
		"a TriggerAuthentication named like a ClusterTriggerAuthentication": {
			kind: v1alpha1.KindTriggerAuthentication, namespace: testNamespace, name: "shared",
			want: []types.NamespacedName{},
		},
		"nobody uses it": {
			kind: v1alpha1.KindClusterTriggerAuthentication, name: "unused",
			want: []types.NamespacedName{},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := env.r.scaledJobsUsing(context.Background(), tc.kind, tc.namespace, tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("scaledJobsUsing (-want +got):\n%s", diff)
			}
		})
	}
}

// runningPollers starts the environment's pollers (as the manager does on the leader) until the test ends.
func runningPollers(t *testing.T, env *loopEnv) {
	t.Helper()
	env.r.init()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = env.r.pollers.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the pollers to start", func() bool {
		env.r.pollers.mu.Lock()
		defer env.r.pollers.mu.Unlock()
		return env.r.pollers.base != nil
	})
}

// waitFor waits (real time, at most 10 s) until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// waitWake waits for the poller (or the message loop) to wake the ScaledJob name, and then runs its tick.
func (e *loopEnv) waitWake(name string) {
	e.t.Helper()
	select {
	case ev := <-e.r.pollers.wake:
		if ev.Object.GetName() != name {
			e.t.Fatalf("woke %s, want %s", ev.Object.GetName(), name)
		}
	case <-time.After(10 * time.Second):
		e.t.Fatalf("%s was not woken", name)
	}
	if _, err := e.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: testNamespace, Name: name}}); err != nil {
		e.t.Fatalf("Reconcile(%s): %v", name, err)
	}
}

// authParams returns the AuthParams of every configuration the fake sources were asked to build, in order.
func (e *loopEnv) authParams() []map[string]string {
	var out []map[string]string
	for _, cfg := range e.sources.builds() {
		out = append(out, cfg.AuthParams)
	}
	return out
}

// An edit of a TriggerAuthentication (a new Secret) reaches the running poller of the ScaledJob that uses it at once,
// not at the next --secret-refresh-interval: the source is rebuilt with the new value and the ScaledJob woken. An
// edit of a TriggerAuthentication nobody uses resolves nothing.
func TestTriggerAuthEditReresolvesAtOnce(t *testing.T) {
	ta := triggerAuth("keys", "token", "old-creds", "key")
	sj := makeSJ("etl").max(10).poll(30).authRef("keys").obj()
	env := newLoopEnv(t, interceptor.Funcs{}, sj, ta, triggerAuth("unused", "token", "old-creds", "key"),
		secret(testNamespace, "old-creds", map[string]string{"key": "old-value"}),
		secret(testNamespace, "new-creds", map[string]string{"key": "new-value"}))
	env.sources.source(defaultTrigger).set(2, nil)
	runningPollers(t, env)
	env.r.pollers.Ensure(sj)
	env.waitWake("etl")
	if n := len(env.jobNames()); n != 2 {
		t.Fatalf("%d Jobs with the first credentials, want 2", n)
	}

	ta.Spec.SecretTargetRef[0].Name = "new-creds"
	if err := env.raw.Update(context.Background(), ta); err != nil {
		t.Fatal(err)
	}
	if reqs := env.r.authChanged(v1alpha1.KindTriggerAuthentication)(context.Background(), ta); len(reqs) != 0 {
		t.Errorf("authChanged enqueued %v; the running poller wakes the ScaledJob itself", reqs)
	}
	env.waitWake("etl")
	want := []map[string]string{{"token": "old-value"}, {"token": "new-value"}}
	if diff := cmp.Diff(want, env.authParams()); diff != "" {
		t.Errorf("built configurations' AuthParams (-want +got):\n%s", diff)
	}
	if ready, msg := condition(env.scaledJob("etl"), v1alpha1.ConditionReady); ready.Status != metav1.ConditionTrue {
		t.Errorf("Ready = %+v %q after the edit, want True", ready, msg)
	}

	unused := triggerAuth("unused", "token", "new-creds", "key")
	if reqs := env.r.authChanged(v1alpha1.KindTriggerAuthentication)(context.Background(), unused); len(reqs) != 0 {
		t.Errorf("authChanged of an unused TriggerAuthentication enqueued %v", reqs)
	}
	if env.r.pollers.running[keyOf(sj)].reresolve.Load() {
		t.Errorf("an edit of a TriggerAuthentication the ScaledJob does not use asks its poller to resolve again")
	}
}

// Removing the namespace from a ClusterTriggerAuthentication's allowedNamespaces takes effect at once: the poller
// resolves again, the ScaledJob goes Ready=False naming the ClusterTriggerAuthentication and the namespace, and no
// Job is created, at that tick or at the next polls (the sources built with the shared credentials are gone). Allowing
// the namespace again is just as quick.
func TestClusterTriggerAuthRevokedAtOnce(t *testing.T) {
	cta := clusterAuth("shared", &v1alpha1.AllowedNamespaces{Names: []string{testNamespace}})
	sj := makeSJ("etl").max(10).poll(30).mutate(func(sj *v1alpha1.ScaledJob) {
		sj.Spec.Triggers[0].AuthenticationRef = &v1alpha1.AuthenticationRef{Name: "shared", Kind: v1alpha1.KindClusterTriggerAuthentication}
	}).obj()
	env := newLoopEnv(t, interceptor.Funcs{}, sj, cta, secret("kubedispatch-system", "shared-creds", map[string]string{"key": "v"}))
	src := env.sources.source(defaultTrigger)
	src.set(2, nil)
	runningPollers(t, env)
	env.r.pollers.Ensure(sj)
	env.waitWake("etl")
	if n := len(env.jobNames()); n != 2 {
		t.Fatalf("%d Jobs while allowed, want 2", n)
	}

	// Revoke: the next tick is Ready=False and creates nothing, though the queue has more work.
	src.set(5, nil)
	cta.Spec.AllowedNamespaces.Names = []string{"team-b"}
	if err := env.raw.Update(context.Background(), cta); err != nil {
		t.Fatal(err)
	}
	env.r.authChanged(v1alpha1.KindClusterTriggerAuthentication)(context.Background(), cta)
	env.waitWake("etl")
	wantMsg := `spec.triggers[0].authenticationRef: ClusterTriggerAuthentication "shared" does not allow namespace team-a`
	checkRefused := func(when string) {
		t.Helper()
		ready, msg := condition(env.scaledJob("etl"), v1alpha1.ConditionReady)
		if ready.Status != metav1.ConditionFalse || ready.Reason != "InvalidTrigger" || !strings.Contains(msg, wantMsg) {
			t.Errorf("%s: Ready = %+v %q, want False InvalidTrigger containing %q", when, ready, msg, wantMsg)
		}
		if n := len(env.jobNames()); n != 2 {
			t.Errorf("%s: %d Jobs, want still 2", when, n)
		}
	}
	checkRefused("right after the revocation")
	calls, closed := src.stats()
	if closed == 0 {
		t.Errorf("the source built with the shared credentials was not closed")
	}

	// The next poll (no re-resolution asked for) does not fall back to the old source either.
	waitFor(t, "the poller to wait for its next poll", env.clock.HasWaiters)
	env.clock.Step(30 * time.Second)
	env.waitWake("etl")
	checkRefused("at the next poll")
	if after, _ := src.stats(); after != calls {
		t.Errorf("the queue was read %d more times with the revoked credentials", after-calls)
	}

	// Allowed again: Jobs follow at once.
	cta.Spec.AllowedNamespaces.Names = []string{testNamespace}
	if err := env.raw.Update(context.Background(), cta); err != nil {
		t.Fatal(err)
	}
	env.r.authChanged(v1alpha1.KindClusterTriggerAuthentication)(context.Background(), cta)
	env.waitWake("etl")
	if ready, msg := condition(env.scaledJob("etl"), v1alpha1.ConditionReady); ready.Status != metav1.ConditionTrue {
		t.Errorf("Ready = %+v %q once allowed again, want True", ready, msg)
	}
	if n := len(env.jobNames()); n != 5 {
		t.Errorf("%d Jobs once allowed again, want 5", n)
	}
}

// Relabelling a namespace out of a ClusterTriggerAuthentication's namespaceSelector revokes it at once, like an edit.
func TestNamespaceRelabelRevokesAtOnce(t *testing.T) {
	cta := clusterAuth("by-label", &v1alpha1.AllowedNamespaces{NamespaceSelector: &metav1.LabelSelector{
		MatchLabels: map[string]string{"team": "etl"}}})
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace, Labels: map[string]string{"team": "etl"}}}
	sj := makeSJ("etl").max(10).poll(30).mutate(func(sj *v1alpha1.ScaledJob) {
		sj.Spec.Triggers[0].AuthenticationRef = &v1alpha1.AuthenticationRef{Name: "by-label", Kind: v1alpha1.KindClusterTriggerAuthentication}
	}).obj()
	env := newLoopEnv(t, interceptor.Funcs{}, sj, cta, ns, secret("kubedispatch-system", "shared-creds", map[string]string{"key": "v"}))
	env.sources.source(defaultTrigger).set(1, nil)
	runningPollers(t, env)
	env.r.pollers.Ensure(sj)
	env.waitWake("etl")
	if n := len(env.jobNames()); n != 1 {
		t.Fatalf("%d Jobs while selected, want 1", n)
	}

	env.sources.source(defaultTrigger).set(3, nil)
	before := ns.Labels
	ns.Labels = map[string]string{"team": "web"}
	if err := env.raw.Update(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	if reqs := env.r.relabelled(context.Background(), testNamespace, before, ns.Labels); len(reqs) != 0 {
		t.Errorf("relabelled enqueued %v; the running poller wakes the ScaledJob itself", reqs)
	}
	env.waitWake("etl")
	ready, msg := condition(env.scaledJob("etl"), v1alpha1.ConditionReady)
	if ready.Status != metav1.ConditionFalse || !strings.Contains(msg, `ClusterTriggerAuthentication "by-label" does not allow namespace team-a`) {
		t.Errorf("Ready = %+v %q after the relabel, want False naming the ClusterTriggerAuthentication and the namespace", ready, msg)
	}
	if n := len(env.jobNames()); n != 1 {
		t.Errorf("%d Jobs after the relabel, want still 1", n)
	}
}

// Before the pollers and message loops run (right after this replica became the leader), the ScaledJobs that use a
// changed authentication are enqueued instead: their first tick resolves.
func TestAuthChangeEnqueuesScaledJobsWithoutPoller(t *testing.T) {
	env := newLoopEnv(t, interceptor.Funcs{}, makeSJ("etl").authRef("keys").obj(), makeSJ("pdf").obj())
	env.r.init()
	got := env.r.authChanged(v1alpha1.KindTriggerAuthentication)(context.Background(), triggerAuth("keys", "token", "s", "k"))
	want := []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: testNamespace, Name: "etl"}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("authChanged (-want +got):\n%s", diff)
	}
}

// A resolution that is refused drops the sources built before: a later read that does not resolve (an ordinary
// poll) reads nothing with the old credentials.
func TestRefusedResolutionDropsSources(t *testing.T) {
	cta := clusterAuth("shared", &v1alpha1.AllowedNamespaces{Names: []string{testNamespace}})
	sj := makeSJ("etl").mutate(func(sj *v1alpha1.ScaledJob) {
		sj.Spec.Triggers[0].AuthenticationRef = &v1alpha1.AuthenticationRef{Name: "shared", Kind: v1alpha1.KindClusterTriggerAuthentication}
	}).obj()
	env := newLoopEnv(t, interceptor.Funcs{}, sj, cta, secret("kubedispatch-system", "shared-creds", map[string]string{"key": "v"}))
	env.r.init()
	ctx := context.Background()
	if res := env.r.pollers.read(ctx, sj, true); res.setupErr != nil || len(res.triggers) != 1 {
		t.Fatalf("allowed: %+v", res)
	}
	cta.Spec.AllowedNamespaces.Names = nil
	if err := env.raw.Update(ctx, cta); err != nil {
		t.Fatal(err)
	}
	for _, reresolve := range []bool{true, false} {
		res := env.r.pollers.read(ctx, sj, reresolve)
		if !sources.IsConfigError(res.setupErr) || len(res.triggers) != 0 {
			t.Errorf("read(reresolve=%t) after the revocation = %+v, want the refusal and no reading", reresolve, res)
		}
	}
}

// blockingReceiver is a message-mode receiver whose Receive waits for its context; it counts the receives.
type blockingReceiver struct{ receives *atomic.Int64 }

func (b blockingReceiver) Receive(ctx context.Context, _ int, _ time.Duration, _ time.Time) ([]sources.Message, error) {
	b.receives.Add(1)
	<-ctx.Done()
	return nil, ctx.Err()
}
func (blockingReceiver) Extend(_ context.Context, _ *sources.Message, now time.Time) (time.Time, error) {
	return now.Add(time.Minute), nil
}
func (blockingReceiver) Ack(context.Context, *sources.Message) error                    { return nil }
func (blockingReceiver) Release(context.Context, *sources.Message, time.Duration) error { return nil }
func (blockingReceiver) DeadLetter(context.Context, *sources.Message, string, map[string]string) error {
	return nil
}
func (blockingReceiver) Lease() time.Duration { return time.Minute }
func (blockingReceiver) Close() error         { return nil }

// In message mode, revoking the namespace rebuilds the receiver at once: the build is refused, the ScaledJob is
// woken and goes Ready=False naming the ClusterTriggerAuthentication and the namespace, and nothing is received any
// more. Allowing it again rebuilds the receiver without waiting out the build back-off.
func TestClusterTriggerAuthRevokedStopsReceiving(t *testing.T) {
	cta := clusterAuth("shared", &v1alpha1.AllowedNamespaces{Names: []string{testNamespace}})
	sj := makeSJ("pdf").max(5).mutate(func(sj *v1alpha1.ScaledJob) {
		sj.Spec.Dispatch = &v1alpha1.Dispatch{Mode: v1alpha1.ModeMessage}
		sj.Spec.Triggers = []v1alpha1.ScaleTrigger{{Type: "aws-sqs-queue", Name: "orders",
			Metadata:          map[string]string{"queueURL": "https://sqs.us-east-1.amazonaws.com/1/orders", "awsRegion": "us-east-1"},
			AuthenticationRef: &v1alpha1.AuthenticationRef{Name: "shared", Kind: v1alpha1.KindClusterTriggerAuthentication}}}
	}).obj()
	env := newLoopEnv(t, interceptor.Funcs{}, sj, cta, secret("kubedispatch-system", "shared-creds", map[string]string{"key": "v"}))
	var mu sync.Mutex
	var built []map[string]string
	var receives atomic.Int64
	if err := env.r.Registry.RegisterReceiver("aws-sqs-queue", func(_ context.Context, cfg sources.Config, _ string) (sources.Receiver, error) {
		mu.Lock()
		defer mu.Unlock()
		built = append(built, cfg.AuthParams)
		return blockingReceiver{receives: &receives}, nil
	}); err != nil {
		t.Fatal(err)
	}
	builds := func() int { mu.Lock(); defer mu.Unlock(); return len(built) }
	env.r.init()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = env.r.messages.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: testNamespace, Name: "pdf"}}
	waitFor(t, "the message loop to start", func() bool {
		res, err := env.r.Reconcile(context.Background(), req)
		return err == nil && res.RequeueAfter != time.Second
	})
	waitFor(t, "the first receive", func() bool { return receives.Load() == 1 })

	cta.Spec.AllowedNamespaces.Names = []string{"team-b"}
	if err := env.raw.Update(context.Background(), cta); err != nil {
		t.Fatal(err)
	}
	if reqs := env.r.authChanged(v1alpha1.KindClusterTriggerAuthentication)(context.Background(), cta); len(reqs) != 0 {
		t.Errorf("authChanged enqueued %v; the running loop wakes the ScaledJob itself", reqs)
	}
	// Drain wakes until the tick shows the refusal (the keeper may wake the ScaledJob for other reasons first).
	wantMsg := `ClusterTriggerAuthentication "shared" does not allow namespace team-a`
	waitFor(t, "Ready=False naming the ClusterTriggerAuthentication", func() bool {
		select {
		case <-env.r.pollers.wake:
			if _, err := env.r.Reconcile(context.Background(), req); err != nil {
				t.Fatal(err)
			}
		default:
		}
		ready, msg := condition(env.scaledJob("pdf"), v1alpha1.ConditionReady)
		return ready.Status == metav1.ConditionFalse && strings.Contains(msg, wantMsg)
	})
	if n := builds(); n != 1 {
		t.Errorf("%d receivers built, want only the first (the rebuild is refused)", n)
	}
	if n := receives.Load(); n != 1 {
		t.Errorf("%d receives, want none after the revocation", n-1)
	}

	cta.Spec.AllowedNamespaces.Names = []string{testNamespace}
	if err := env.raw.Update(context.Background(), cta); err != nil {
		t.Fatal(err)
	}
	env.r.authChanged(v1alpha1.KindClusterTriggerAuthentication)(context.Background(), cta)
	waitFor(t, "a receiver built again once allowed", func() bool { return builds() == 2 && receives.Load() == 2 })
}
