package dispatcher

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// kubectl dispatch explain on a paused ScaledJob, an invalid one and one whose trigger fails (with a
// minReplicaCount baseline): the figure it prints is what the dispatcher then does. The paused and the failing one
// are explained while paused and unpaused afterwards; the invalid one is explained as it is.
func TestExplainMatchesDispatcher(t *testing.T) {
	f := framework.New(t)
	plugin := buildPlugin(t)
	url := f.CreateQueue("explain", nil)
	f.SendMessages(url, 4, "m")
	framework.NewScaledJob(f, "stays-paused").SQS(url, 1).Max(10).RunFor("10m").Paused().Create()
	bad := framework.NewScaledJob(f, "invalid").SQS(url, 1).Max(10).RunFor("10m")
	bad.ScaledJob.Spec.Triggers[0].Metadata["queueLength"] = "not-a-number"
	bad.Create()
	framework.NewScaledJob(f, "failing").SQS(url+"-does-not-exist", 1).Min(2).Max(10).Poll(600).RunFor("10m").Paused().Create()
	f.StartDispatcher()

	f.WaitReady("invalid", "False", "queueLength")
	for _, name := range []string{"stays-paused", "failing"} {
		f.Eventually("paused tick of "+name, 2*time.Minute, func() (bool, error) {
			sj := f.ScaledJob(name)
			c := framework.Condition(sj, v1alpha1.ConditionPaused)
			return c != nil && c.Status == "True" && sj.Status.LastDecision != nil && len(sj.Status.Triggers) > 0, nil
		})
	}
	explained := map[string]int64{}
	for _, name := range []string{"stays-paused", "invalid", "failing"} {
		explained[name] = explainWouldCreate(t, plugin, f, name)
	}
	if explained["stays-paused"] != 4 {
		t.Errorf("stays-paused: explain would create %d, want 4 (backlog 4, target 1), blocked by the pause", explained["stays-paused"])
	}
	if explained["invalid"] != 0 {
		t.Errorf("invalid: explain would create %d, want 0", explained["invalid"])
	}

	ticks := f.Ticks("failing")
	f.UpdateScaledJob("failing", func(sj *v1alpha1.ScaledJob) { delete(sj.Annotations, v1alpha1.AnnotationPaused) })
	f.Eventually(fmt.Sprintf("failing: the %d Jobs explain predicted", explained["failing"]), 2*time.Minute, func() (bool, error) {
		n := len(f.JobsOf("failing"))
		return int64(n) == explained["failing"] && f.Ticks("failing") > ticks, fmt.Errorf("%d Jobs", n)
	})
	if explained["failing"] != 2 {
		t.Errorf("failing: explain would create %d, want the minReplicaCount baseline 2", explained["failing"])
	}
	// Two more ticks of the paused one (the invalid one does not tick, the failing one polls every 600 s): still
	// exactly what explain said for each.
	f.WaitDecisionAfter("stays-paused", time.Now().Add(time.Second))
	for name, want := range map[string]int{"stays-paused": 0, "invalid": 0, "failing": int(explained["failing"])} {
		if n := len(f.JobsOf(name)); n != want {
			t.Errorf("%s: %d Jobs, want %d", name, n, want)
		}
	}
}

// kubectl dispatch explain --live reads the queue itself: with a reading in status that is old (poll 600 s) and 5
// more messages sent since, the live explanation counts them; a custom endpoint outside --allowed-endpoints is
// refused as the dispatcher refuses it.
func TestExplainLive(t *testing.T) {
	f := framework.New(t)
	plugin := buildPlugin(t)
	url := f.CreateQueue("live", nil)
	f.SendMessages(url, 2, "m")
	framework.NewScaledJob(f, "live").SQS(url, 1).Max(20).Poll(600).RunFor("10m").Paused().Create()
	f.StartDispatcher()
	f.Eventually("the first reading in status", 2*time.Minute, func() (bool, error) {
		sj := f.ScaledJob("live")
		return len(sj.Status.Triggers) == 1 && sj.Status.Triggers[0].Backlog == "2", nil
	})
	f.SendMessages(url, 5, "later")
	if got := explainWouldCreate(t, plugin, f, "live"); got != 2 {
		t.Errorf("explain from status would create %d, want 2 (the reading in status)", got)
	}
	// The test's environment names moto as the default SQS endpoint (AWS_ENDPOINT_URL_SQS), which makes it the
	// operator's choice; the plugin runs without it, as on a laptop, so the trigger's awsEndpoint is a custom one.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_ENDPOINT_URL") {
			env = append(env, kv)
		}
	}
	run := func(extra ...string) ([]byte, error) {
		args := append([]string{"explain", "live", "-n", f.Namespace, "-o", "json", "--kubeconfig", framework.Cluster().Kubeconfig, "--live"}, extra...)
		cmd := exec.Command(plugin, args...)
		cmd.Env = env
		return cmd.Output()
	}
	f.Eventually("explain --live counting 7 messages", time.Minute, func() (bool, error) {
		// The trigger has no authenticationRef: the plugin's own (ambient) AWS credentials go to moto, which the
		// endpoint policy allows only with both flags, as the dispatcher's.
		out, err := run("--allowed-endpoints=127.0.0.1:*,localhost:*", "--allow-ambient-credentials-on-custom-endpoints")
		if err != nil {
			return false, fmt.Errorf("explain --live: %v: %s", err, out)
		}
		var e struct {
			WouldCreate int64    `json:"wouldCreate"`
			Notes       []string `json:"notes"`
		}
		if err := json.Unmarshal(out, &e); err != nil {
			return false, err
		}
		return e.WouldCreate == 7 && strings.Contains(strings.Join(e.Notes, " "), "explain --live"), fmt.Errorf("%s", out)
	})
	out, err := run()
	if err != nil {
		t.Fatalf("explain --live without an allow-list: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "allowed-endpoints") {
		t.Errorf("explain --live without an allow-list for the test's custom endpoint: want the trigger refused naming --allowed-endpoints, got %s", out)
	}
}
