package dispatch

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubedispatch/kubedispatch/sources"
)

func TestEndpointBackoff(t *testing.T) {
	cases := map[int]time.Duration{0: 0, 1: 0, 2: time.Second, 3: 2 * time.Second, 4: 4 * time.Second, 6: 16 * time.Second, 7: 30 * time.Second, 50: 30 * time.Second}
	for failures, want := range cases {
		t.Run(fmt.Sprint(failures), func(t *testing.T) {
			if diff := cmp.Diff(want, EndpointBackoff(failures)); diff != "" {
				t.Errorf("EndpointBackoff(%d) (-want +got):\n%s", failures, diff)
			}
		})
	}
}

func TestEndpointBackoffSpacesOutOnlyItsEndpoint(t *testing.T) {
	b := newEndpointBackoff()
	for range 3 {
		b.record("sqs:dead", testNow, true)
	}
	b.record("sqs:alive", testNow, false)
	if wait, _ := b.wait("sqs:dead", testNow); wait != 2*time.Second {
		t.Errorf("dead endpoint waits %v after 3 failures, want 2s", wait)
	}
	if wait, _ := b.wait("sqs:alive", testNow); wait != 0 {
		t.Errorf("healthy endpoint waits %v, want 0", wait)
	}
	b.record("sqs:dead", testNow.Add(3*time.Second), false)
	if wait, _ := b.wait("sqs:dead", testNow.Add(3*time.Second)); wait != 0 {
		t.Errorf("a success does not reset the back-off: waits %v", wait)
	}
}

func TestNeedsReresolve(t *testing.T) {
	refused := fmt.Errorf("reading queue: %w: InvalidClientTokenId", sources.ErrUnauthorized)
	cases := map[string]struct {
		res  pollResult
		want bool
	}{
		"all fine":               {res: pollResult{triggers: []triggerResult{{}}}},
		"transient error":        {res: pollResult{triggers: []triggerResult{{err: errors.New("timeout")}}}},
		"key refused by a queue": {res: pollResult{triggers: []triggerResult{{}, {err: refused}}}, want: true},
		"setup refused":          {res: pollResult{setupErr: refused}, want: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := needsReresolve(tc.res); got != tc.want {
				t.Errorf("needsReresolve = %v, want %v", got, tc.want)
			}
		})
	}
}
