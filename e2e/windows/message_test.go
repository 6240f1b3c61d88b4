package windows

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// Message mode follows the window: at most 2 messages held (2 unfinished Jobs) before, 6 while the window is open;
// at a terminating close the 4 Jobs above 2 are deleted and their messages handed back at once, without using up
// a delivery attempt (maxDeliveries 1: a counted attempt would dead-letter them).
func TestMessageModeFollowsTheWindow(t *testing.T) {
	t.Parallel()
	f := framework.New(t)
	url := f.CreateQueue("held", map[string]string{"VisibilityTimeout": "30"})
	dlq := f.CreateQueue("held-dlq", nil)
	f.SendMessages(url, 30, "doc")
	s := nextSlot(70*time.Second, 1)
	b := framework.NewScaledJob(f, "pdf").SQS(url, 1).Max(2).Poll(2).RunFor("10m").History(1000, 1000)
	b.ScaledJob.Spec.Dispatch = &v1alpha1.Dispatch{Mode: v1alpha1.ModeMessage, MaxDeliveries: ptr.To[int32](1),
		DeadLetter: &v1alpha1.DeadLetter{QueueURL: dlq}}
	b.ScaledJob.Spec.CapacityWindows = []v1alpha1.CapacityWindow{s.window("burst", 6, v1alpha1.OnCloseTerminate)}
	b.Create()
	f.StartDispatcher()
	p := samplePeak(f, "pdf")
	defer p.Stop()

	f.Eventually("2 messages held before the window", time.Minute, func() (bool, error) {
		m := f.ScaledJob("pdf").Status.Messages
		return m != nil && m.Held == 2, fmt.Errorf("status.messages %+v", m)
	})
	waitUntil(f, s.open.Add(-time.Second))
	if got := p.Take(); got > 2 {
		t.Errorf("%d unfinished Jobs before the window, spec max is 2", got)
	}
	f.Eventually("6 unfinished Jobs in the window", 40*time.Second, func() (bool, error) {
		n, _ := unfinished(f, "pdf")
		return n == 6, nil
	})
	waitUntil(f, s.close.Add(-time.Second))
	if got := p.Take(); got > 6 {
		t.Errorf("%d unfinished Jobs in the window, its max is 6", got)
	}

	f.Eventually("the 4 Jobs above 2 deleted and their messages released", time.Minute, func() (bool, error) {
		n, _ := unfinished(f, "pdf")
		m := f.ScaledJob("pdf").Status.Messages
		return n <= 2 && m != nil && m.Released >= 4 && m.Held <= 2, fmt.Errorf("%d unfinished, status.messages %+v", n, m)
	})
	ticks := f.Ticks("pdf")
	f.WaitTicks("pdf", ticks, 3)
	m := f.ScaledJob("pdf").Status.Messages
	if n, _ := unfinished(f, "pdf"); n > 2 || m.DeadLettered != 0 {
		t.Errorf("after the close: %d unfinished Jobs, status.messages %+v; want at most 2 and nothing dead-lettered", n, m)
	}
	if visible, inFlight := f.QueueCounts(url); visible+inFlight != 30 {
		t.Errorf("queue holds %d visible + %d in flight, want all 30 messages still there", visible, inFlight)
	}
}
