package message

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/cluster"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// Every example in deploy/examples is accepted by the API server (the CRD schema and its CEL rules, with a dry run)
// and passes the dispatcher's own validation: the manifests the docs point at work as written.
func TestExamplesAreValid(t *testing.T) {
	t.Parallel()
	f := framework.New(t)
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	paths, err := filepath.Glob(filepath.Join(root, "deploy", "examples", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
			for {
				var raw map[string]any
				if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					t.Fatalf("decoding: %v", err)
				}
				if raw == nil {
					continue
				}
				js, err := json.Marshal(raw)
				if err != nil {
					t.Fatal(err)
				}
				var obj client.Object
				switch raw["kind"] {
				case "ScaledJob":
					sj := &v1alpha1.ScaledJob{}
					d := json.NewDecoder(bytes.NewReader(js))
					d.DisallowUnknownFields()
					if err := d.Decode(sj); err != nil {
						t.Fatalf("ScaledJob: %v", err)
					}
					if errs := sj.Validate(); len(errs) > 0 {
						t.Errorf("ScaledJob %s: %v", sj.Name, errs.ToAggregate())
					}
					obj = sj
				case "TriggerAuthentication":
					obj = &v1alpha1.TriggerAuthentication{}
				case "ClusterTriggerAuthentication":
					obj = &v1alpha1.ClusterTriggerAuthentication{}
				default:
					continue // Secrets and other kinds are plain Kubernetes objects
				}
				if err := json.Unmarshal(js, obj); err != nil {
					t.Fatal(err)
				}
				if obj.GetNamespace() == "" && raw["kind"] != "ClusterTriggerAuthentication" {
					obj.SetNamespace(f.Namespace)
				}
				if err := f.Client.Create(f.Ctx, obj, client.DryRunAll); err != nil {
					t.Errorf("%s %s refused by the API server: %v", raw["kind"], obj.GetName(), err)
				}
			}
		})
	}
}
