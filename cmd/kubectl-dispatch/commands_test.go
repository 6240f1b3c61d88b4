package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/cmd/kubectl-dispatch/internal/explain"
)

// This package has no golden files; the flag is accepted so that `go test ./cmd/kubectl-dispatch/... -update`
// refreshes those of internal/importer and internal/explain.
var _ = flag.Bool("update", false, "accepted for go test ./cmd/kubectl-dispatch/... -update")

// run executes the plugin with args against c (namespace "etl" unless -n is given) and returns stdout, stderr
// and the error Execute returned.
func run(t *testing.T, c client.Client, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := newApp(strings.NewReader(stdin), &out, &errOut)
	a.newClient = func(a *app) (client.Client, string, error) {
		ns := a.namespace
		if ns == "" {
			ns = "etl"
		}
		return c, ns, nil
	}
	cmd := newRootCommand(a)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func scaledJob(annotations map[string]string) *v1alpha1.ScaledJob {
	return &v1alpha1.ScaledJob{
		ObjectMeta: metav1.ObjectMeta{Name: "reports", Namespace: "etl", UID: "uid-1", Annotations: annotations},
		Spec: v1alpha1.ScaledJobSpec{
			MaxReplicaCount: ptr.To[int32](3),
			JobTargetRef: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "worker", Image: "example.com/worker:1"}},
			}}},
			Triggers: []v1alpha1.ScaleTrigger{{Type: "aws-sqs-queue", Name: "orders"}},
		},
		Status: v1alpha1.ScaledJobStatus{Triggers: []v1alpha1.TriggerStatus{{Name: "orders", Type: "aws-sqs-queue", Backlog: "10", Target: "1", Active: true}}},
	}
}

func fakeClient(objs ...client.Object) client.Client {
	return fake.NewClientBuilder().WithScheme(newScheme()).WithObjects(objs...).Build()
}

func TestPauseResume(t *testing.T) {
	cases := map[string]struct {
		annotations map[string]string
		args        []string
		wantOut     string
		wantAnn     map[string]string
	}{
		"pause sets the annotation": {
			annotations: map[string]string{"team": "etl"},
			args:        []string{"pause", "reports"},
			wantOut:     "scaledjob.kubedispatch.io/reports paused (kubedispatch.io/paused: unset -> \"true\")\n",
			wantAnn:     map[string]string{"team": "etl", v1alpha1.AnnotationPaused: "true"},
		},
		"pause replaces a value that does not pause": {
			annotations: map[string]string{v1alpha1.AnnotationPaused: "false"},
			args:        []string{"pause", "reports"},
			wantOut:     "scaledjob.kubedispatch.io/reports paused (kubedispatch.io/paused: \"false\" -> \"true\")\n",
			wantAnn:     map[string]string{v1alpha1.AnnotationPaused: "true"},
		},
		"pause twice changes nothing": {
			annotations: map[string]string{v1alpha1.AnnotationPaused: "true"},
			args:        []string{"pause", "reports"},
			wantOut:     "scaledjob.kubedispatch.io/reports already paused (kubedispatch.io/paused=\"true\"), no change\n",
			wantAnn:     map[string]string{v1alpha1.AnnotationPaused: "true"},
		},
		"resume removes the annotation": {
			annotations: map[string]string{"team": "etl", v1alpha1.AnnotationPaused: "true"},
			args:        []string{"resume", "reports"},
			wantOut:     "scaledjob.kubedispatch.io/reports resumed (kubedispatch.io/paused: \"true\" -> unset)\n",
			wantAnn:     map[string]string{"team": "etl"},
		},
		"resume without the annotation changes nothing": {
			args:    []string{"resume", "reports"},
			wantOut: "scaledjob.kubedispatch.io/reports is not paused (no kubedispatch.io/paused annotation), no change\n",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := fakeClient(scaledJob(tc.annotations))
			out, _, err := run(t, c, "", tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantOut, out); diff != "" {
				t.Errorf("output mismatch (-want +got):\n%s", diff)
			}
			var sj v1alpha1.ScaledJob
			if err := c.Get(context.Background(), types.NamespacedName{Namespace: "etl", Name: "reports"}, &sj); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantAnn, sj.Annotations); diff != "" {
				t.Errorf("annotations mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPauseNotFound(t *testing.T) {
	_, _, err := run(t, fakeClient(), "", "pause", "missing", "-n", "other")
	if err == nil || !strings.Contains(err.Error(), "getting ScaledJob other/missing") {
		t.Errorf("error = %v, want one naming other/missing", err)
	}
}

const kedaScaledJob = `apiVersion: keda.sh/v1alpha1
kind: ScaledJob
metadata: {name: sj, namespace: etl}
spec:
  jobTargetRef: {template: {spec: {containers: [{name: c, image: i}]}}}
  triggers: [{type: %s, metadata: {timezone: Etc/UTC, start: "0 * * * *", end: "1 * * * *", desiredReplicas: "1"}}]
`

func TestImport(t *testing.T) {
	cases := map[string]struct {
		stdin   string
		args    []string
		wantOut string // substring; "" means stdout must be empty
		wantErr string
	}{
		"stdin": {
			stdin:   strings.Replace(kedaScaledJob, "%s", "cron", 1),
			args:    []string{"import", "-f", "-"},
			wantOut: "apiVersion: kubedispatch.io/v1alpha1\nkind: ScaledJob\n",
		},
		"file": {
			args:    []string{"import", "-f", "internal/importer/testdata/migration-example.yaml"},
			wantOut: "# ScaledJob reports/pdf-generation: converted from keda.sh/v1alpha1\n",
		},
		"unsupported trigger prints nothing": {
			stdin:   strings.Replace(kedaScaledJob, "%s", "kafka", 1),
			args:    []string{"import", "-f", "-"},
			wantErr: `converting ScaledJob etl/sj: spec.triggers[0] (type "kafka"): trigger type "kafka" is not supported`,
		},
		"missing file": {
			args:    []string{"import", "-f", "testdata/none.yaml"},
			wantErr: "opening manifests",
		},
		"-f is required": {
			args:    []string{"import"},
			wantErr: `required flag(s) "filename" not set`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, _, err := run(t, fakeClient(), tc.stdin, tc.args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				if out != "" {
					t.Errorf("stdout = %q on error, want nothing", out)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, tc.wantOut) {
				t.Errorf("stdout %q does not contain %q", out, tc.wantOut)
			}
		})
	}
}

func TestExplainCommand(t *testing.T) {
	sj := scaledJob(nil)
	other := scaledJob(nil)
	other.Name, other.UID = "other", "uid-2"
	running := batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "reports-a", Namespace: "etl",
		Labels:          map[string]string{v1alpha1.LabelScaledJob: "reports"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "kubedispatch.io/v1alpha1", Kind: "ScaledJob", Name: "reports", UID: "uid-1", Controller: ptr.To(true)}}}}
	runningPod := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "reports-a-x", Namespace: "etl",
		Labels: map[string]string{v1alpha1.LabelScaledJob: "reports", batchv1.JobNameLabel: "reports-a"}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	otherJob := running.DeepCopy()
	otherJob.Name, otherJob.Labels = "other-a", map[string]string{v1alpha1.LabelScaledJob: "other"}
	c := fakeClient(sj, other, &running, &runningPod, otherJob)

	t.Run("text", func(t *testing.T) {
		out, _, err := run(t, c, "", "explain", "reports")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"4. Jobs: 1 running, of which 0 pending", "Jobs to create: 2\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("output does not contain %q:\n%s", want, out)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		out, _, err := run(t, c, "", "explain", "reports", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var x explain.Explanation
		if err := json.Unmarshal([]byte(out), &x); err != nil {
			t.Fatalf("decoding %q: %v", out, err)
		}
		if x.Create != 2 || x.Jobs.Running != 1 {
			t.Errorf("create %d running %d, want 2 and 1", x.Create, x.Jobs.Running)
		}
	})
	t.Run("yaml what-if", func(t *testing.T) {
		out, _, err := run(t, c, "", "explain", "reports", "--what-if", "strategy=eager,maxReplicaCount=50", "-o", "yaml")
		if err != nil {
			t.Fatal(err)
		}
		var cmpr explain.Comparison
		if err := yaml.Unmarshal([]byte(out), &cmpr); err != nil {
			t.Fatalf("decoding %q: %v", out, err)
		}
		if cmpr.Current.Create != 2 || cmpr.Changed.Create != 10 {
			t.Errorf("create current %d what-if %d, want 2 and 10", cmpr.Current.Create, cmpr.Changed.Create)
		}
	})
	t.Run("bad output", func(t *testing.T) {
		if _, _, err := run(t, c, "", "explain", "reports", "-o", "wide"); err == nil {
			t.Error("-o wide succeeded, want an error")
		}
	})
	t.Run("bad what-if", func(t *testing.T) {
		if _, _, err := run(t, c, "", "explain", "reports", "--what-if", "bogus=1"); err == nil {
			t.Error("--what-if bogus=1 succeeded, want an error")
		}
	})
}

func TestWatchOnce(t *testing.T) {
	c := fakeClient(scaledJob(map[string]string{v1alpha1.AnnotationPaused: "true"}))
	out, _, err := run(t, c, "", "watch", "reports", "--once")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ScaledJob etl/reports at ", ": 0 to create now (decision 3)", "Blocked: paused by annotation"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not contain %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, clearScreen) {
		t.Error("output to a non-terminal clears the screen")
	}
	if _, _, err := run(t, c, "", "watch", "missing", "--once"); err == nil {
		t.Error("watch of a missing ScaledJob succeeded off a terminal, want an error")
	}
}
