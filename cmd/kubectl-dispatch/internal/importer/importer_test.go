package importer

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files from the current output")

// TestConvertGolden converts every testdata/*.yaml and compares with testdata/*.golden (the output, or the error
// after "error:"). Refresh with `go test ./cmd/kubectl-dispatch/... -update`.
func TestConvertGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no testdata/*.yaml")
	}
	for _, in := range inputs {
		t.Run(strings.TrimSuffix(filepath.Base(in), ".yaml"), func(t *testing.T) {
			f, err := os.Open(in)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			out, err := Convert(f)
			got := string(out)
			if err != nil {
				if out != nil {
					t.Errorf("Convert returned output %q with error %v; want none", out, err)
				}
				got = "error:\n" + err.Error() + "\n"
			} else {
				checkRoundTrip(t, out)
			}
			golden := strings.TrimSuffix(in, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (run with -update to create it): %v", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("Convert(%s) mismatch (-want +got):\n%s", in, diff)
			}
		})
	}
}

// checkRoundTrip decodes every converted object strictly into the v1alpha1 types and validates ScaledJobs.
func checkRoundTrip(t *testing.T, out []byte) {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	n := 0
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading output: %v", err)
		}
		n++
		var head struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatalf("document %d: %v", n, err)
		}
		if head.APIVersion != v1alpha1.GroupVersion.String() {
			t.Errorf("document %d: apiVersion %q, want %q", n, head.APIVersion, v1alpha1.GroupVersion.String())
		}
		switch head.Kind {
		case "ScaledJob":
			var sj v1alpha1.ScaledJob
			if err := yaml.UnmarshalStrict(doc, &sj); err != nil {
				t.Errorf("document %d: strict decode: %v", n, err)
			}
			if errs := sj.Validate(); len(errs) > 0 {
				t.Errorf("document %d: ScaledJob %s does not validate: %v", n, sj.Name, errs.ToAggregate())
			}
		case "TriggerAuthentication":
			var ta v1alpha1.TriggerAuthentication
			if err := yaml.UnmarshalStrict(doc, &ta); err != nil {
				t.Errorf("document %d: strict decode: %v", n, err)
			}
		case "ClusterTriggerAuthentication":
			var cta v1alpha1.ClusterTriggerAuthentication
			if err := yaml.UnmarshalStrict(doc, &cta); err != nil {
				t.Errorf("document %d: strict decode: %v", n, err)
			}
			if cta.Namespace != "" {
				t.Errorf("document %d: ClusterTriggerAuthentication with namespace %q", n, cta.Namespace)
			}
		default:
			t.Errorf("document %d: unexpected kind %q", n, head.Kind)
		}
	}
	if n == 0 {
		t.Error("no documents in the output")
	}
}

func TestConvertErrors(t *testing.T) {
	cases := map[string]struct {
		in   string
		want []string // substrings of the error
	}{
		"empty input": {
			in:   "# nothing\n---\n",
			want: []string{"no objects found"},
		},
		"not KEDA": {
			in:   "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\n",
			want: []string{`Job j: apiVersion "batch/v1" is not keda.sh/v1alpha1`},
		},
		"unsupported trigger names object, index and type": {
			in: `apiVersion: keda.sh/v1alpha1
kind: ScaledJob
metadata: {name: sj, namespace: ns}
spec:
  jobTargetRef: {template: {spec: {containers: [{name: c, image: i}]}}}
  triggers: [{type: cron, metadata: {timezone: Etc/UTC, start: "0 * * * *", end: "1 * * * *", desiredReplicas: "1"}}, {type: kafka, metadata: {}}]
`,
			want: []string{`converting ScaledJob ns/sj: spec.triggers[1] (type "kafka"): trigger type "kafka" is not supported`},
		},
		"unknown field in the Job template": {
			in: `apiVersion: keda.sh/v1alpha1
kind: ScaledJob
metadata: {name: sj, namespace: ns}
spec:
  jobTargetRef: {template: {spec: {containerz: [{name: c, image: i}]}}}
  triggers: [{type: cron, metadata: {timezone: Etc/UTC, start: "0 * * * *", end: "1 * * * *", desiredReplicas: "1"}}]
`,
			want: []string{"converting ScaledJob ns/sj: not supported by kubedispatch", `unknown field "spec.jobTargetRef.template.spec.containerz"`},
		},
		"invalid after conversion": {
			in: `apiVersion: keda.sh/v1alpha1
kind: ScaledJob
metadata: {name: sj, namespace: ns}
spec:
  jobTargetRef: {template: {spec: {restartPolicy: Always, containers: [{name: c, image: i}]}}}
  triggers: [{type: cron, metadata: {timezone: Etc/UTC, start: "0 * * * *", end: "1 * * * *", desiredReplicas: "1"}}]
`,
			want: []string{"converting ScaledJob ns/sj: kubedispatch would refuse it", "restartPolicy"},
		},
		"legacy pod identity": {
			in:   "apiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata: {name: a, namespace: ns}\nspec: {podIdentity: {provider: aws-eks}}\n",
			want: []string{`converting TriggerAuthentication ns/a: spec.podIdentity.provider "aws-eks" is a legacy KEDA provider`},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, err := Convert(strings.NewReader(tc.in))
			if err == nil {
				t.Fatalf("Convert succeeded with %q; want an error", out)
			}
			if out != nil {
				t.Errorf("Convert returned output %q with the error; want none", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
