package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/cluster"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
	"github.com/kubedispatch/kubedispatch/e2e/worker"
	"github.com/kubedispatch/kubedispatch/jobtemplate"
)

// KEDA's docs table (keda-scaledjob-reference.md §2.8 I), end to end: the backlog sits in moto, R Jobs are already
// running, and the Jobs the dispatcher creates in its first unpaused tick are counted.
func TestKEDADocsTableEndToEnd(t *testing.T) {
	f := framework.New(t)
	rows := map[string]struct {
		backlog, max, target, running int
		want                          int
	}{
		"Q10 max3 T1 R0":   {backlog: 10, max: 3, target: 1, running: 0, want: 3},
		"Q10 max3 T2 R0":   {backlog: 10, max: 3, target: 2, running: 0, want: 3},
		"Q10 max3 T1 R1":   {backlog: 10, max: 3, target: 1, running: 1, want: 2},
		"Q10 max100 T1 R0": {backlog: 10, max: 100, target: 1, running: 0, want: 10},
		"Q4 max3 T5 R0":    {backlog: 4, max: 3, target: 5, running: 0, want: 1},
	}
	names := map[string]string{}
	i := 0
	for row, tc := range rows {
		name := fmt.Sprintf("docs-%d", i)
		i++
		names[row] = name
		url := f.CreateQueue(name, nil)
		f.SendMessages(url, tc.backlog, row)
		// Created paused with a long poll, so the running Jobs exist before the first counted tick.
		sj := framework.NewScaledJob(f, name).SQS(url, tc.target).Max(int32(tc.max)).Poll(600).RunFor("10m").Paused().Create()
		for range tc.running {
			job, err := jobtemplate.Build(sj, jobtemplate.Name(sj.Name, jobtemplate.RandomSuffix))
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Client.Create(f.Ctx, job); err != nil {
				t.Fatal(err)
			}
		}
	}
	plugin := buildPlugin(t)
	f.StartDispatcher()
	ticksBefore := map[string]float64{}
	wouldCreate := map[string]int64{}
	// Wait until each paused ScaledJob has been seen (a paused tick creates nothing), then unpause them all.
	for _, name := range names {
		f.Eventually("paused tick of "+name, 2*time.Minute, func() (bool, error) {
			sj := f.ScaledJob(name)
			c := framework.Condition(sj, v1alpha1.ConditionPaused)
			return c != nil && c.Status == "True" && sj.Status.LastDecision != nil, nil
		})
		if n := len(f.JobsOf(name)); n > rows[rowOf(names, name)].running {
			t.Fatalf("%s: %d Jobs while paused", name, n)
		}
		ticksBefore[name] = f.Ticks(name)
		// kubectl dispatch explain on the paused ScaledJob: what it would create is what the dispatcher creates
		// once unpaused (checked below).
		wouldCreate[name] = explainWouldCreate(t, plugin, f, name)
		f.UpdateScaledJob(name, func(sj *v1alpha1.ScaledJob) { delete(sj.Annotations, v1alpha1.AnnotationPaused) })
	}
	for row, tc := range rows {
		name := names[row]
		t.Run(row, func(t *testing.T) {
			// Two ticks after unpausing (pollingInterval is 600 s, so no other): the one the edit wakes, and the one
			// on the fresh reading unpausing asks for, which must create nothing more.
			sj := f.WaitTicks(name, ticksBefore[name], 2)
			if isPausedDecision(sj) {
				t.Fatalf("%s still paused after two ticks", name)
			}
			created := 0.0
			for _, d := range f.Dispatchers() {
				v, _ := d.MetricSum("kubedispatch_jobs_created_total", map[string]string{"namespace": f.Namespace, "scaledjob": name})
				created += v
			}
			if int(created) != tc.want {
				t.Errorf("jobs created = %v, want %d (last reason: %s)", created, tc.want, sj.Status.LastDecision.Reason)
			}
			if wouldCreate[name] != int64(created) {
				t.Errorf("kubectl dispatch explain said %d Jobs would be created, the dispatcher created %v", wouldCreate[name], created)
			}
			if got := len(f.JobsOf(name)); got != tc.running+tc.want {
				t.Errorf("jobs in the cluster = %d, want %d running before + %d created", got, tc.running, tc.want)
			}
		})
	}
}

// buildPlugin builds kubectl-dispatch from the working tree.
func buildPlugin(t *testing.T) string {
	t.Helper()
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "kubectl-dispatch")
	build := exec.Command("go", "build", "-o", bin, "./cmd/kubectl-dispatch")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building kubectl-dispatch: %v\n%s", err, out)
	}
	return bin
}

// explainWouldCreate runs kubectl dispatch explain -o json on the ScaledJob and returns its wouldCreate.
func explainWouldCreate(t *testing.T, plugin string, f *framework.F, name string) int64 {
	t.Helper()
	cmd := exec.Command(plugin, "explain", name, "-n", f.Namespace, "-o", "json", "--kubeconfig", framework.Cluster().Kubeconfig)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl dispatch explain %s: %v\n%s", name, err, out)
	}
	var e struct {
		WouldCreate int64    `json:"wouldCreate"`
		Create      int64    `json:"create"`
		Blockers    []string `json:"blockers"`
	}
	if err := json.Unmarshal(out, &e); err != nil {
		t.Fatalf("kubectl dispatch explain %s -o json: %v\n%s", name, err, out)
	}
	t.Logf("kubectl dispatch explain %s: would create %d, create %d, blockers %q", name, e.WouldCreate, e.Create, e.Blockers)
	return e.WouldCreate
}

func rowOf(names map[string]string, name string) string {
	for row, n := range names {
		if n == name {
			return row
		}
	}
	return ""
}

func isPausedDecision(sj *v1alpha1.ScaledJob) bool {
	c := framework.Condition(sj, v1alpha1.ConditionPaused)
	return c != nil && c.Status == "True"
}

// 100 messages through at most 10 Jobs at a time, with the worker simulator taking one message per Job.
// KEDA's math for the default strategy with scaleOnInFlight=true (messages being processed stay counted until
// deleted): each tick creates ceil(Q/1) - R Jobs capped at 10 - R. Every unfinished Job either holds a counted
// message or will take one, so no Job can find the queue empty: the predicted number of idle Jobs is 0, and exactly
// 100 Jobs run. The cap must hold at every sampled moment.
func TestDrainAtCapNeverExceedsMax(t *testing.T) {
	f := framework.New(t)
	url := f.CreateQueue("drain", map[string]string{"VisibilityTimeout": "60"})
	f.SendMessages(url, 100, "order")
	framework.NewScaledJob(f, "drain").SQS(url, 1).Max(10).Poll(5).RunFor("2s").History(200, 200).Create()

	w := &worker.SQS{Client: f.SQS, QueueURL: url, Clientset: f.Clientset, Namespace: f.Namespace,
		Selector: v1alpha1.LabelScaledJob + "=drain", Log: testr.New(t)}
	ctx, cancel := context.WithCancel(f.Ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	d := f.StartDispatcher()

	maxSeen := 0
	start := time.Now()
	f.Eventually("100 messages processed", 10*time.Minute, func() (bool, error) {
		jobs := f.JobsOf("drain")
		if n := framework.Unfinished(jobs); n > maxSeen {
			maxSeen = n
		}
		if maxSeen > 10 {
			t.Fatalf("%d unfinished Jobs at once, max is 10", maxSeen)
		}
		return w.Stats().Processed == 100, nil
	})
	elapsed := time.Since(start)
	// Let a few more ticks pass with an empty queue: nothing more may be created.
	f.WaitDecisionAfter("drain", time.Now().Add(time.Second))
	jobs := f.JobsOf("drain")
	st := w.Stats()
	t.Logf("drained 100 messages in %.1fs with at most %d unfinished Jobs; %d Jobs in all; worker stats %+v", elapsed.Seconds(), maxSeen, len(jobs), st)
	if st.Idle != 0 {
		t.Errorf("%d Jobs found no message; KEDA's math for default + scaleOnInFlight predicts 0", st.Idle)
	}
	if len(jobs) != 100 {
		t.Errorf("%d Jobs created, want exactly 100 (one per message)", len(jobs))
	}
	if dup := w.DuplicateDeletes(); len(dup) > 0 {
		t.Errorf("messages deleted twice: %v", dup)
	}
	if v, inflight := f.QueueCounts(url); v+inflight != 0 {
		t.Errorf("queue still holds %d visible and %d in-flight messages", v, inflight)
	}
	if m, err := d.Metrics(); err != nil {
		t.Errorf("reading metrics: %v", err)
	} else if want := `kubedispatch_jobs_created_total{namespace="` + f.Namespace + `",scaledjob="drain"} 100`; !strings.Contains(m, want) {
		t.Errorf("metrics lack %q", want)
	}
}

// Killing the dispatcher (SIGKILL) mid-run and starting a new one neither creates extra Jobs nor deletes any.
func TestRestartCreatesNoExtraJobsAndDeletesNone(t *testing.T) {
	f := framework.New(t)
	url := f.CreateQueue("restart", nil)
	f.SendMessages(url, 20, "m")
	framework.NewScaledJob(f, "restart").SQS(url, 1).Max(30).Poll(1).RunFor("10m").Create()
	d := f.StartDispatcher()
	f.Eventually("20 Jobs", 2*time.Minute, func() (bool, error) { return len(f.JobsOf("restart")) == 20, nil })
	before := uids(f.JobsOf("restart"))

	d.Stop(syscall.SIGKILL)
	killed := time.Now()
	f.StartDispatcher()
	// The new process must win the lease (the old one was killed without releasing it) and tick several times.
	f.WaitDecisionAfter("restart", killed.Add(10*time.Second))
	after := uids(f.JobsOf("restart"))
	if len(after) != 20 {
		t.Fatalf("%d Jobs after restart, want the same 20", len(after))
	}
	for uid := range before {
		if !after[uid] {
			t.Errorf("job %s was deleted or replaced across the restart", uid)
		}
	}
}

func uids(jobs []batchv1.Job) map[types.UID]bool {
	m := map[types.UID]bool{}
	for _, j := range jobs {
		m[j.UID] = true
	}
	return m
}
