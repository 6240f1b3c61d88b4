package dispatch

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/dispatch/internal/apilimit"
)

// An InvalidSpec with many field errors still leaves an event (the API server refuses a note over 1024 bytes, and
// the whole event with it) and keeps every error in the condition; the next tick, with the same errors, emits none.
func TestInvalidSpecWithManyErrorsLeavesAnEvent(t *testing.T) {
	sj := makeSJ("etl").max(10).mutate(func(sj *v1alpha1.ScaledJob) {
		sj.Spec.JobTargetRef.Template.Labels = map[string]string{}
		for i := range 20 {
			sj.Spec.JobTargetRef.Template.Labels[fmt.Sprintf("label-%02d", i)] = strings.Repeat("v", 64)
		}
	}).obj()
	env := newLoopEnv(t, interceptor.Funcs{}, sj)
	env.mustReconcile("etl")

	evs := eventsWithReason(env.drainEvents(), corev1.EventTypeWarning, ReasonInvalidSpec)
	if len(evs) != 1 {
		t.Fatalf("got %d InvalidSpec warnings, want 1: %v", len(evs), evs)
	}
	note := strings.TrimPrefix(evs[0], corev1.EventTypeWarning+" "+ReasonInvalidSpec+" ")
	if len(note) > apilimit.EventNote {
		t.Errorf("InvalidSpec note has %d bytes, more than the %d the API server accepts", len(note), apilimit.EventNote)
	}
	if !strings.HasPrefix(note, "[spec.jobTargetRef.template.metadata.labels[label-00]: Invalid value:") ||
		!strings.HasSuffix(note, " more bytes)") {
		t.Errorf("InvalidSpec note = %q, want the first errors and how much was cut", note)
	}
	_, msg := condition(env.scaledJob("etl"), v1alpha1.ConditionReady)
	for i := range 20 {
		if want := fmt.Sprintf("labels[label-%02d]", i); !strings.Contains(msg, want) {
			t.Errorf("Ready message does not name %s: %q", want, msg)
		}
	}

	env.clock.Step(time.Minute)
	env.mustReconcile("etl")
	if evs := eventsWithReason(env.drainEvents(), corev1.EventTypeWarning, ReasonInvalidSpec); len(evs) != 0 {
		t.Errorf("the same errors emitted %d more InvalidSpec warnings: %v", len(evs), evs)
	}
}
