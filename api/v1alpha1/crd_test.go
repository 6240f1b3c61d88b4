package v1alpha1

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// readCRDSchema returns the v1alpha1 schema of a generated CRD in deploy/crd.
func readCRDSchema(t *testing.T, file string) *apiextensionsv1.JSONSchemaProps {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "crd", file))
	if err != nil {
		t.Fatalf("reading generated CRD (run hack/generate.sh): %v", err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(b, &crd); err != nil {
		t.Fatalf("decoding %s: %v", file, err)
	}
	for _, v := range crd.Spec.Versions {
		if v.Name == GroupVersion.Version {
			return v.Schema.OpenAPIV3Schema
		}
	}
	t.Fatalf("%s has no version %s", file, GroupVersion.Version)
	return nil
}

func prop(t *testing.T, s *apiextensionsv1.JSONSchemaProps, path ...string) apiextensionsv1.JSONSchemaProps {
	t.Helper()
	cur := *s
	for _, p := range path {
		next, ok := cur.Properties[p]
		if !ok {
			t.Fatalf("schema has no property %v", path)
		}
		cur = next
	}
	return cur
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encoding %v: %v", v, err)
	}
	return string(b)
}

// TestCRDMatchesGoDefaults keeps the CRD's defaults and enums (from kubebuilder markers) in step with the Go
// constants that the accessors and Validate use.
func TestCRDMatchesGoDefaults(t *testing.T) {
	schema := readCRDSchema(t, "kubedispatch.io_scaledjobs.yaml")
	tests := map[string]struct {
		path        []string
		wantDefault any
		wantEnum    []any
	}{
		"pollingInterval":            {path: []string{"spec", "pollingInterval"}, wantDefault: DefaultPollingInterval},
		"successfulJobsHistoryLimit": {path: []string{"spec", "successfulJobsHistoryLimit"}, wantDefault: DefaultSuccessfulJobsHistoryLimit},
		"failedJobsHistoryLimit":     {path: []string{"spec", "failedJobsHistoryLimit"}, wantDefault: DefaultFailedJobsHistoryLimit},
		"minReplicaCount":            {path: []string{"spec", "minReplicaCount"}, wantDefault: DefaultMinReplicaCount},
		"maxReplicaCount":            {path: []string{"spec", "maxReplicaCount"}, wantDefault: DefaultMaxReplicaCount},
		"rollout.strategy": {
			path: []string{"spec", "rollout", "strategy"}, wantDefault: DefaultRolloutStrategy,
			wantEnum: []any{RolloutGradual, RolloutImmediate},
		},
		"rollout.propagationPolicy": {
			path: []string{"spec", "rollout", "propagationPolicy"}, wantDefault: DefaultPropagationPolicy,
			wantEnum: []any{PropagationForeground, PropagationBackground},
		},
		"scalingStrategy.strategy": {
			path: []string{"spec", "scalingStrategy", "strategy"}, wantDefault: DefaultScalingStrategy,
			wantEnum: []any{StrategyDefault, StrategyCustom, StrategyAccurate, StrategyEager},
		},
		"scalingStrategy.multipleScalersCalculation": {
			path: []string{"spec", "scalingStrategy", "multipleScalersCalculation"}, wantDefault: DefaultMultipleScalersCalculation,
			wantEnum: []any{CalculationMax, CalculationMin, CalculationAvg, CalculationSum},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := prop(t, schema, tc.path...)
			if p.Default == nil {
				t.Fatalf("%s has no default", name)
			}
			if diff := cmp.Diff(jsonOf(t, tc.wantDefault), string(p.Default.Raw)); diff != "" {
				t.Errorf("default mismatch (-go +crd):\n%s", diff)
			}
			var gotEnum []any
			for _, e := range p.Enum {
				var v any
				if err := json.Unmarshal(e.Raw, &v); err != nil {
					t.Fatalf("decoding enum value %s: %v", e.Raw, err)
				}
				gotEnum = append(gotEnum, v)
			}
			if diff := cmp.Diff(tc.wantEnum, gotEnum); diff != "" {
				t.Errorf("enum mismatch (-go +crd):\n%s", diff)
			}
		})
	}

	triggers := prop(t, schema, "spec", "triggers")
	if triggers.MaxItems == nil || *triggers.MaxItems != MaxTriggers {
		t.Errorf("spec.triggers maxItems = %v, want %d", triggers.MaxItems, MaxTriggers)
	}
	name := triggers.Items.Schema.Properties["name"]
	if name.MaxLength == nil || *name.MaxLength != MaxTriggerNameLength {
		t.Errorf("spec.triggers[].name maxLength = %v, want %d", name.MaxLength, MaxTriggerNameLength)
	}
}

// TestCRDFitsClientSideApply checks the size budget hack/generate.sh enforces: kubectl apply (client side) stores
// the object in a 256 KiB annotation.
func TestCRDFitsClientSideApply(t *testing.T) {
	for _, file := range []string{
		"kubedispatch.io_scaledjobs.yaml",
		"kubedispatch.io_triggerauthentications.yaml",
		"kubedispatch.io_clustertriggerauthentications.yaml",
	} {
		t.Run(file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "crd", file))
			if err != nil {
				t.Fatalf("reading generated CRD (run hack/generate.sh): %v", err)
			}
			j, err := yaml.YAMLToJSON(b)
			if err != nil {
				t.Fatalf("converting %s to JSON: %v", file, err)
			}
			if len(j) > 256*1024 {
				t.Errorf("%s is %d bytes as JSON, above the 256 KiB kubectl apply annotation limit", file, len(j))
			}
		})
	}
}

// The pod template's metadata must keep its labels and annotations: without generateEmbeddedObjectMeta the API
// server prunes them silently, and every Job loses the template's labels and annotations.
func TestCRDKeepsPodTemplateMetadata(t *testing.T) {
	s := readCRDSchema(t, "kubedispatch.io_scaledjobs.yaml")
	meta := prop(t, s, "spec", "jobTargetRef", "template", "metadata")
	for _, field := range []string{"labels", "annotations"} {
		if _, ok := meta.Properties[field]; !ok {
			t.Errorf("spec.jobTargetRef.template.metadata has no %s in the schema: it would be pruned", field)
		}
	}
}
