package dispatcher

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// kedaScaledJob is a KEDA ScaledJob manifest (keda.sh/v1alpha1) for one row of KEDA's docs table, paused with KEDA's
// own annotation, its pods annotated for kwok to run 10 minutes.
func kedaScaledJob(name, namespace, queueURL string, max, target int) string {
	return fmt.Sprintf(`apiVersion: keda.sh/v1alpha1
kind: ScaledJob
metadata:
  name: %s
  namespace: %s
  annotations:
    autoscaling.keda.sh/paused: "true"
spec:
  pollingInterval: 600
  maxReplicaCount: %d
  jobTargetRef:
    template:
      metadata:
        annotations:
          kwok.test/run-for: 10m
      spec:
        restartPolicy: Never
        containers:
          - name: worker
            image: example.com/worker:1
  triggers:
    - type: aws-sqs-queue
      metadata:
        queueURL: %s
        queueLength: "%d"
        awsRegion: us-east-1
        awsEndpoint: %s
`, name, namespace, max, queueURL, target, framework.Cluster().SQSEndpoint)
}

// KEDA manifests converted by kubectl dispatch import apply cleanly and dispatch as the native ScaledJobs of
// TestKEDADocsTableEndToEnd do (the same rows, without running Jobs); a manifest with an unsupported trigger is
// refused with exit code 1, naming it, and nothing printed on stdout.
func TestImportedKEDAManifestsDispatchAlike(t *testing.T) {
	f := framework.New(t)
	plugin := buildPlugin(t)
	rows := map[string]struct{ backlog, max, target, want int }{
		"Q10 max3 T1":   {backlog: 10, max: 3, target: 1, want: 3},
		"Q10 max3 T2":   {backlog: 10, max: 3, target: 2, want: 3},
		"Q10 max100 T1": {backlog: 10, max: 100, target: 1, want: 10},
		"Q4 max3 T5":    {backlog: 4, max: 3, target: 5, want: 1},
	}
	var manifests []string
	names := map[string]string{}
	i := 0
	for row, tc := range rows {
		name := fmt.Sprintf("imported-%d", i)
		i++
		names[row] = name
		url := f.CreateQueue(name, nil)
		f.SendMessages(url, tc.backlog, row)
		manifests = append(manifests, kedaScaledJob(name, f.Namespace, url, tc.max, tc.target))
	}
	out := runImport(t, plugin, strings.Join(manifests, "---\n"), 0)
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	created := 0
	for {
		var sj v1alpha1.ScaledJob
		err := dec.Decode(&sj)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("decoding the import's output: %v\n%s", err, out)
		}
		if sj.Kind == "" {
			continue // an empty document
		}
		if sj.Kind != "ScaledJob" || !v1alpha1.IsPaused(&sj) {
			t.Fatalf("converted %s %s: want a paused ScaledJob (KEDA's pause annotation converted)", sj.Kind, sj.Name)
		}
		if err := f.Client.Create(f.Ctx, &sj); err != nil {
			t.Fatalf("applying the converted ScaledJob %s: %v", sj.Name, err)
		}
		created++
	}
	if created != len(rows) {
		t.Fatalf("the import gave %d ScaledJobs, want %d:\n%s", created, len(rows), out)
	}

	f.StartDispatcher()
	ticksBefore := map[string]float64{}
	for _, name := range names {
		f.Eventually("paused tick of "+name, 2*time.Minute, func() (bool, error) {
			sj := f.ScaledJob(name)
			c := framework.Condition(sj, v1alpha1.ConditionPaused)
			return c != nil && c.Status == "True" && sj.Status.LastDecision != nil, nil
		})
		ticksBefore[name] = f.Ticks(name)
		f.UpdateScaledJob(name, func(sj *v1alpha1.ScaledJob) { delete(sj.Annotations, v1alpha1.AnnotationPaused) })
	}
	for row, tc := range rows {
		name := names[row]
		t.Run(row, func(t *testing.T) {
			sj := f.WaitTicks(name, ticksBefore[name], 2)
			if got := len(f.JobsOf(name)); got != tc.want {
				t.Errorf("%d Jobs, want %d as for the native ScaledJob (last reason: %s)", got, tc.want, sj.Status.LastDecision.Reason)
			}
		})
	}

	t.Run("an unsupported trigger", func(t *testing.T) {
		bad := kedaScaledJob("kafka-too", f.Namespace, "https://sqs.us-east-1.amazonaws.com/1/q", 3, 1) +
			"    - type: kafka\n      metadata: {topic: orders, bootstrapServers: kafka:9092, lagThreshold: \"5\"}\n"
		runImport(t, plugin, bad, 1)
	})
}

// runImport pipes manifests into kubectl dispatch import -f - and checks its exit code; with code 1 it also checks
// that stdout is empty and stderr names the unsupported trigger.
func runImport(t *testing.T, plugin, manifests string, wantCode int) []byte {
	t.Helper()
	cmd := exec.Command(plugin, "import", "-f", "-")
	cmd.Stdin = strings.NewReader(manifests)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("running kubectl dispatch import: %v", err)
	}
	if code != wantCode {
		t.Fatalf("kubectl dispatch import exited %d, want %d\nstdout:\n%s\nstderr:\n%s", code, wantCode, stdout.String(), stderr.String())
	}
	if wantCode != 0 {
		if stdout.Len() != 0 {
			t.Errorf("a refused import printed on stdout:\n%s", stdout.String())
		}
		if !strings.Contains(stderr.String(), `"kafka"`) {
			t.Errorf("stderr does not name the unsupported trigger kafka:\n%s", stderr.String())
		}
		t.Logf("refused: %s", strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes()
}
