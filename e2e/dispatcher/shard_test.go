package dispatcher

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

const shardLabel = "kubedispatch.io/shard"

// Two shards (--watch-label-selector on a shard label, each with its own Lease) split the ScaledJobs: each
// dispatches and ticks only its own. Its Job and pod caches use the same selector, so the Jobs and pods carry their
// ScaledJob's shard label (checked here), and a shard sees its own pods running: status.pending drops to 0, where a
// shard that could not see them would count every Job as pending. A ScaledJob outside both selectors is served by
// neither. (That a shard's caches hold nothing else follows from the selector; cmd/dispatcher's cache tests check it.)
func TestShardsSplitScaledJobsJobsAndPods(t *testing.T) {
	f := framework.New(t)
	for _, s := range []string{"a", "b", "none"} {
		url := f.CreateQueue("shard-"+s, nil)
		f.SendMessages(url, 3, s)
		b := framework.NewScaledJob(f, "shard-"+s).SQS(url, 1).Max(3).RunFor("10m")
		if s != "none" {
			b.ScaledJob.Labels = map[string]string{shardLabel: s}
		}
		// A template label with the shard key must not move the pods to another shard.
		b.ScaledJob.Spec.JobTargetRef.Template.Labels = map[string]string{shardLabel: "elsewhere", "app": "etl"}
		b.Create()
	}
	shards := map[string]*framework.Dispatcher{}
	for _, s := range []string{"a", "b"} {
		shards[s] = f.StartDispatcher("--watch-label-selector="+shardLabel+"="+s,
			"--leader-election-id=dispatcher-shard-"+s+".kubedispatch.io")
	}
	for _, s := range []string{"a", "b"} {
		name := "shard-" + s
		f.Eventually(name+": 3 Jobs running, none pending", 3*time.Minute, func() (bool, error) {
			for _, d := range shards {
				f.RequireRunning(d)
			}
			sj := f.ScaledJob(name)
			return len(f.JobsOf(name)) == 3 && sj.Status.Active == 3 && sj.Status.Pending == 0, nil
		})
		for _, j := range f.JobsOf(name) {
			if got := j.Labels[shardLabel]; got != s {
				t.Errorf("Job %s: label %s=%q, want %q", j.Name, shardLabel, got, s)
			}
			if got := j.Spec.Template.Labels[shardLabel]; got != s {
				t.Errorf("Job %s: pod template label %s=%q, want %q", j.Name, shardLabel, got, s)
			}
		}
		var pods corev1.PodList
		if err := f.Client.List(f.Ctx, &pods, client.InNamespace(f.Namespace), client.MatchingLabels{v1alpha1.LabelScaledJob: name}); err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			if got := p.Labels[shardLabel]; got != s {
				t.Errorf("pod %s: label %s=%q, want %q", p.Name, shardLabel, got, s)
			}
		}
	}
	// Each shard ticked its own ScaledJob and never the other shard's or the unlabelled one.
	for s, d := range shards {
		for _, other := range []string{"a", "b", "none"} {
			ticks, err := d.MetricSum("kubedispatch_ticks_total", map[string]string{"scaledjob": "shard-" + other})
			if err != nil {
				t.Fatalf("reading shard %s's metrics: %v", s, err)
			}
			if mine := other == s; mine != (ticks > 0) {
				t.Errorf("shard %s ticked shard-%s %v times", s, other, ticks)
			}
		}
	}
	if n := len(f.JobsOf("shard-none")); n != 0 {
		t.Errorf("the ScaledJob outside both shards has %d Jobs, want 0", n)
	}
	if sj := f.ScaledJob("shard-none"); sj.Status.LastDecision != nil {
		t.Errorf("the ScaledJob outside both shards has a decision: %s", fmt.Sprint(sj.Status.LastDecision))
	}
}
