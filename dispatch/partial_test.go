package dispatch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
)

// The partial-failure rule (docs/strategies.md): the baseline is always kept; sum counts the answered triggers;
// max, min and avg create nothing beyond the baseline while a trigger fails.
func TestDecidePartialFailure(t *testing.T) {
	cases := map[string]struct {
		in         Inputs
		wantCreate int64
	}{
		"baseline kept with the only trigger failing": {
			in:         Inputs{FailedTriggers: []string{"q"}, MinReplicaCount: ptr.To[int32](2), MaxReplicaCount: ptr.To[int32](5)},
			wantCreate: 2,
		},
		"baseline already running: nothing more": {
			in:         Inputs{FailedTriggers: []string{"q"}, Running: 2, MinReplicaCount: ptr.To[int32](2), MaxReplicaCount: ptr.To[int32](5)},
			wantCreate: 0,
		},
		"sum counts the answered trigger": {
			in: Inputs{Triggers: []TriggerReading{active("ok", 3, 1)}, FailedTriggers: []string{"down"},
				Calculation: CalculationSum, MaxReplicaCount: ptr.To[int32](10)},
			wantCreate: 3,
		},
		"max creates nothing beyond the baseline": {
			in: Inputs{Triggers: []TriggerReading{active("ok", 3, 1)}, FailedTriggers: []string{"down"},
				Calculation: CalculationMax, MaxReplicaCount: ptr.To[int32](10)},
			wantCreate: 0,
		},
		"unset calculation is max": {
			in: Inputs{Triggers: []TriggerReading{active("ok", 3, 1)}, FailedTriggers: []string{"down"},
				MinReplicaCount: ptr.To[int32](1), MaxReplicaCount: ptr.To[int32](10)},
			wantCreate: 1,
		},
		"min creates nothing beyond the baseline": {
			in: Inputs{Triggers: []TriggerReading{active("ok", 3, 1)}, FailedTriggers: []string{"down"},
				Calculation: CalculationMin, MaxReplicaCount: ptr.To[int32](10)},
			wantCreate: 0,
		},
		"avg creates nothing beyond the baseline": {
			in: Inputs{Triggers: []TriggerReading{active("ok", 3, 1)}, FailedTriggers: []string{"down"},
				Calculation: CalculationAvg, MaxReplicaCount: ptr.To[int32](10)},
			wantCreate: 0,
		},
		"eager keeps only the baseline too": {
			in: Inputs{FailedTriggers: []string{"down"}, MinReplicaCount: ptr.To[int32](1), MaxReplicaCount: ptr.To[int32](10),
				Settings: StrategySettings{Strategy: StrategyEager}},
			wantCreate: 1,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			d := Decide(tc.in)
			if diff := cmp.Diff(tc.wantCreate, d.Create); diff != "" {
				t.Errorf("Create mismatch (-want +got):\n%s\nreason: %s", diff, d.Reason)
			}
			for _, f := range tc.in.FailedTriggers {
				if !strings.Contains(d.Reason, f) {
					t.Errorf("reason %q does not name the failing trigger %q", d.Reason, f)
				}
			}
		})
	}
}

func TestReconcileKeepsBaselineWhileTriggerFails(t *testing.T) {
	env := newLoopEnv(t, interceptor.Funcs{}, makeSJ("etl").min(2).max(5).obj())
	env.sources.source(defaultTrigger).set(0, errors.New("connection refused"))

	_, _ = env.reconcile("etl")

	if got := len(env.jobs()); got != 2 {
		t.Errorf("%d Jobs with a failing trigger and minReplicaCount 2, want 2", got)
	}
	sj := env.scaledJob("etl")
	ready := apimeta.FindStatusCondition(sj.Status.Conditions, v1alpha1.ConditionReady)
	if ready == nil || ready.Status != "False" || !strings.Contains(ready.Message, defaultTrigger) {
		t.Errorf("Ready = %+v, want False naming trigger %q", ready, defaultTrigger)
	}
}

func TestReconcileCapsCreatesPerTick(t *testing.T) {
	env := newLoopEnv(t, interceptor.Funcs{}, makeSJ("etl").max(1200).obj())
	env.r.MaxCreatesPerTick = 50
	env.sources.source(defaultTrigger).set(120, nil)

	res := env.mustReconcile("etl")
	if got := len(env.jobs()); got != 50 {
		t.Errorf("%d Jobs after one tick, want the per-tick cap 50", got)
	}
	if !res.Requeue { //nolint:staticcheck // Requeue is what the reconciler returns for "go on at once"
		t.Errorf("result %+v, want an immediate requeue while more Jobs are wanted", res)
	}
	env.mustReconcile("etl")
	env.mustReconcile("etl")
	if got := len(env.jobs()); got != 120 {
		t.Errorf("%d Jobs after three ticks, want 120", got)
	}
}

// A create the API server applied but answered with 500 (client-go may then retry into AlreadyExists) is ours:
// it is adopted, never made a second time.
func TestReconcileCreatesAreIdempotent(t *testing.T) {
	var calls atomic.Int64
	funcs := interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			j, ok := obj.(*batchv1.Job)
			if !ok {
				return c.Create(ctx, obj, opts...)
			}
			n := calls.Add(1)
			if err := c.Create(ctx, j, opts...); err != nil {
				return err
			}
			switch n % 10 {
			case 3:
				return apierrors.NewInternalError(fmt.Errorf("proxy lost the answer"))
			case 7:
				return apierrors.NewAlreadyExists(jobsGR, j.Name) // what a client-go retry of an applied create sees
			}
			return nil
		},
	}
	env := newLoopEnv(t, funcs, makeSJ("etl").max(30).obj())
	env.sources.source(defaultTrigger).set(30, nil)

	env.mustReconcile("etl")
	env.mustReconcile("etl")

	if got := len(env.jobs()); got != 30 {
		t.Errorf("%d Jobs for a backlog of 30 behind a faulty API, want exactly 30", got)
	}
}

// Ticks that change nothing a person would act on write no status.
func TestReconcileWritesStatusOnlyOnChange(t *testing.T) {
	var updates atomic.Int64
	funcs := interceptor.Funcs{
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			updates.Add(1)
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	}
	env := newLoopEnv(t, funcs, makeSJ("etl").max(5).obj())
	env.sources.source(defaultTrigger).set(0, nil)

	env.mustReconcile("etl")
	first := updates.Load()
	decided := env.scaledJob("etl").Status.LastDecision.Time
	for range 5 {
		env.clock.Step(30e9)
		env.mustReconcile("etl")
	}
	if got := updates.Load() - first; got != 0 {
		t.Errorf("%d status writes over 5 idle ticks, want 0", got)
	}
	if got := env.scaledJob("etl").Status.LastDecision.Time; !got.Equal(&decided) {
		t.Errorf("lastDecision.time moved to %v on identical ticks, want %v (when the decision was first made)", got, decided)
	}

	env.sources.source(defaultTrigger).set(2, nil)
	env.clock.Step(30e9)
	env.mustReconcile("etl")
	if got := updates.Load() - first; got != 1 {
		t.Errorf("%d status writes after the backlog changed, want 1", got)
	}
}
