package scale

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// One ScaledJob whose SQS endpoint accepts connections and never answers does not delay the 20 healthy ones: each
// healthy ScaledJob gets its first Job within 2 polls (plus slack for a slow machine) of its message being sent,
// while the black-holed one reports its trigger error.
func TestBlackholedEndpointDoesNotDelayOthers(t *testing.T) {
	const (
		healthy = 20
		poll    = 5
	)
	f := framework.New(t)
	hole := "http://" + framework.Blackhole(t)
	b := framework.NewScaledJob(f, "blackholed").SQS(hole+"/123456789012/blackholed", 1, "awsEndpoint", hole).Poll(poll).RunFor("1h")
	b.Create()
	urls := map[string]string{}
	var names []string
	for i := range healthy {
		name := fmt.Sprintf("healthy-%02d", i)
		urls[name] = f.CreateQueue(name, nil)
		framework.NewScaledJob(f, name).SQS(urls[name], 1).Max(1).Poll(poll).RunFor("1h").Create()
		names = append(names, name)
	}
	// The black hole is a custom endpoint used with the dispatcher's own (environment) credentials.
	d := startDispatcher(f, "--allow-ambient-credentials-on-custom-endpoints")
	// Every healthy ScaledJob has been read once (its empty queue): the dispatcher is up and ticking.
	waitAllReady(f, d, names, 3*time.Minute)

	sent := map[string]time.Time{}
	for _, name := range names {
		f.SendMessages(urls[name], 1, name)
		sent[name] = time.Now()
	}
	bound := 2*poll*time.Second + latencySlack
	lat := firstJobLatencies(f, d, f.Namespace, sent, 3*time.Minute)
	t.Logf("first-Job latency per healthy ScaledJob (bound %s): %s", bound, formatLatencies(lat))
	var slow []string
	for name, l := range lat {
		if l > bound {
			slow = append(slow, fmt.Sprintf("%s took %.1fs", name, l.Seconds()))
		}
	}
	if len(slow) > 0 {
		t.Errorf("%d of %d healthy ScaledJobs got their first Job later than 2 polls + %s (%s) after their message was sent, next to a black-holed endpoint: %s",
			len(slow), healthy, latencySlack, bound, strings.Join(slow, "; "))
	}

	f.Eventually("a trigger error in status.triggers[0].lastError of the black-holed ScaledJob", 2*time.Minute, func() (bool, error) {
		f.RequireRunning(d)
		sj := f.ScaledJob("blackholed")
		if len(sj.Status.Triggers) == 0 {
			return false, fmt.Errorf("no status.triggers yet")
		}
		return sj.Status.Triggers[0].LastError != "", fmt.Errorf("status.triggers[0] = %+v", sj.Status.Triggers[0])
	})
	t.Logf("black-holed trigger error: %s", f.ScaledJob("blackholed").Status.Triggers[0].LastError)
	if n := len(f.JobsOf("blackholed")); n != 0 {
		t.Errorf("%d Jobs for the black-holed ScaledJob, want 0", n)
	}
}
