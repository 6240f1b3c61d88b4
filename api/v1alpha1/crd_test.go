package v1alpha1

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/client-go/util/jsonpath"
	"sigs.k8s.io/yaml"
)

// readCRDSchema returns the v1alpha1 schema of a generated CRD in deploy/crd.
func readCRDSchema(t *testing.T, file string) *apiextensionsv1.JSONSchemaProps {
	t.Helper()
	crd := readCRD(t, file)
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
		"dispatch.mode": {
			path: []string{"spec", "dispatch", "mode"}, wantDefault: ModeCount,
			wantEnum: []any{ModeCount, ModeMessage},
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

// readCRD returns a generated CRD of deploy/crd.
func readCRD(t *testing.T, file string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "crd", file))
	if err != nil {
		t.Fatalf("reading generated CRD (run hack/generate.sh): %v", err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(b, &crd); err != nil {
		t.Fatalf("decoding %s: %v", file, err)
	}
	return &crd
}

// TestCRDModeColumnShowsCount applies the API server's own defaulting (null pruning, then the structural schema's
// defaults) to ScaledJobs that leave spec.dispatch out, and reads the Mode printer column from the result, as the
// API server's table printer does for kubectl get: a count-mode ScaledJob must show "count", not an empty column.
func TestCRDModeColumnShowsCount(t *testing.T) {
	crd := readCRD(t, "kubedispatch.io_scaledjobs.yaml")
	var version *apiextensionsv1.CustomResourceDefinitionVersion
	for i := range crd.Spec.Versions {
		if crd.Spec.Versions[i].Name == GroupVersion.Version {
			version = &crd.Spec.Versions[i]
		}
	}
	if version == nil {
		t.Fatalf("the CRD has no version %s", GroupVersion.Version)
	}
	var internal apiextensions.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(version.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
		t.Fatal(err)
	}
	structural, err := structuralschema.NewStructural(&internal)
	if err != nil {
		t.Fatalf("the CRD schema is not structural: %v", err)
	}
	var column string
	for _, c := range version.AdditionalPrinterColumns {
		if c.Name == "Mode" {
			column = c.JSONPath
		}
	}
	if column == "" {
		t.Fatal("the CRD has no Mode printer column")
	}
	jp := jsonpath.New("Mode").AllowMissingKeys(true)
	if err := jp.Parse("{" + column + "}"); err != nil {
		t.Fatalf("parsing the Mode column's JSONPath %q: %v", column, err)
	}

	tests := map[string]struct {
		spec string
		want string
	}{
		"no dispatch":       {spec: `{"triggers":[{"type":"cron"}]}`, want: ModeCount},
		"dispatch null":     {spec: `{"dispatch":null,"triggers":[{"type":"cron"}]}`, want: ModeCount},
		"dispatch empty":    {spec: `{"dispatch":{},"triggers":[{"type":"cron"}]}`, want: ModeCount},
		"dispatch, no mode": {spec: `{"dispatch":{"maxDeliveries":2},"triggers":[{"type":"cron"}]}`, want: ModeCount},
		"mode count":        {spec: `{"dispatch":{"mode":"count"},"triggers":[{"type":"cron"}]}`, want: ModeCount},
		"mode message":      {spec: `{"dispatch":{"mode":"message"},"triggers":[{"type":"aws-sqs-queue"}]}`, want: ModeMessage},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var obj map[string]any
			if err := json.Unmarshal([]byte(`{"apiVersion":"kubedispatch.io/v1alpha1","kind":"ScaledJob","metadata":{"name":"a"},"spec":`+tc.spec+`}`), &obj); err != nil {
				t.Fatal(err)
			}
			defaulting.PruneNonNullableNullsWithoutDefaults(obj, structural)
			defaulting.Default(obj, structural)
			var out bytes.Buffer
			if err := jp.Execute(&out, obj); err != nil {
				t.Fatalf("evaluating %s: %v", column, err)
			}
			if got := out.String(); got != tc.want {
				t.Errorf("Mode column %q, want %q (spec after defaulting: %s)", got, tc.want, jsonOf(t, obj["spec"]))
			}
		})
	}
}
