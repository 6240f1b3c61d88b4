package v1alpha1

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

func TestValidateNamesAndSizes(t *testing.T) {
	name := field.NewPath("metadata", "name")
	annotations := field.NewPath("metadata", "annotations")
	tmeta := field.NewPath("spec", "jobTargetRef", "template", "metadata")
	triggers := field.NewPath("spec", "triggers")
	budget := apivalidation.TotalAnnotationSizeLimitB - AnnotationReserve
	withTemplate := func(labels, annotations map[string]string) func(*ScaledJob) {
		return func(sj *ScaledJob) {
			sj.Spec.JobTargetRef.Template.Labels = labels
			sj.Spec.JobTargetRef.Template.Annotations = annotations
		}
	}
	withMetadata := func(md map[string]string) func(*ScaledJob) {
		return func(sj *ScaledJob) { sj.Spec.Triggers[0].Metadata = md }
	}
	manyKeys := func(n int) map[string]string {
		md := make(map[string]string, n)
		for i := range n {
			md[fmt.Sprintf("k%03d", i)] = "v"
		}
		return md
	}

	tests := map[string]struct {
		sj   *ScaledJob
		want field.ErrorList
	}{
		"63-character name": {
			sj: makeScaledJob(func(sj *ScaledJob) { sj.Name = strings.Repeat("a", 63) }),
		},
		"64-character name": {
			sj: makeScaledJob(func(sj *ScaledJob) { sj.Name = strings.Repeat("a", 64) }),
			want: field.ErrorList{
				field.Invalid(name, strings.Repeat("a", 64), NameTooLongMessage+" (this one has 64)"),
			},
		},
		"253-character name": {
			sj: makeScaledJob(func(sj *ScaledJob) { sj.Name = strings.Repeat("a", 253) }),
			want: field.ErrorList{
				field.Invalid(name, strings.Repeat("a", 253), NameTooLongMessage+" (this one has 253)"),
			},
		},
		"dots in the name of an Indexed Job template": {
			sj: makeScaledJob(func(sj *ScaledJob) {
				sj.Name = "pdf.renderer"
				sj.Spec.JobTargetRef.CompletionMode = ptr.To(batchv1.IndexedCompletion)
				sj.Spec.JobTargetRef.Completions = ptr.To[int32](3)
			}),
			want: field.ErrorList{
				field.Invalid(name, "pdf.renderer", "must not contain '.' when spec.jobTargetRef.completionMode is Indexed: "+
					"the Job's name is part of its pods' hostnames (<job name>-<index>), which must be DNS labels"),
			},
		},
		"dots in the name of a NonIndexed Job template": {
			sj: makeScaledJob(func(sj *ScaledJob) {
				sj.Name = "pdf.renderer"
				sj.Spec.JobTargetRef.CompletionMode = ptr.To(batchv1.NonIndexedCompletion)
				sj.Spec.JobTargetRef.Completions = ptr.To[int32](3)
			}),
		},
		"template labels and annotations that the API server accepts": {
			sj: makeScaledJob(withTemplate(
				map[string]string{"team": strings.Repeat("v", 63), "example.com/tier": "", "app.kubernetes.io/name": "pdf"},
				map[string]string{"Example.com/Note": strings.Repeat("x", 1000), "owner": ""},
			)),
		},
		"template label value of 64 characters names the label": {
			sj: makeScaledJob(withTemplate(map[string]string{"team": strings.Repeat("v", 64), "ok": "yes"}, nil)),
			want: field.ErrorList{
				field.Invalid(tmeta.Child("labels").Key("team"), strings.Repeat("v", 64), "must be no more than 63 bytes").
					WithOrigin("format=k8s-label-value"),
			},
		},
		"template label with a bad key and a bad value, in key order": {
			sj: makeScaledJob(withTemplate(map[string]string{"z": "a b", "bad key": "v"}, nil)),
			want: field.ErrorList{
				field.Invalid(tmeta.Child("labels").Key("bad key"), "bad key",
					"name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')").
					WithOrigin("format=k8s-label-key"),
				field.Invalid(tmeta.Child("labels").Key("z"), "a b",
					"a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')").
					WithOrigin("format=k8s-label-value"),
			},
		},
		"template annotation with a bad key": {
			sj: makeScaledJob(withTemplate(nil, map[string]string{"a/b/c": "v"})),
			want: field.ErrorList{
				field.Invalid(tmeta.Child("annotations").Key("a/b/c"), "a/b/c",
					"a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')").
					WithOrigin("format=k8s-label-key"),
			},
		},
		"template annotations that fill the budget exactly": {
			sj: makeScaledJob(withTemplate(nil, map[string]string{"a": strings.Repeat("x", budget-1)})),
		},
		"template annotations one byte over the budget": {
			sj: makeScaledJob(withTemplate(nil, map[string]string{"a": strings.Repeat("x", budget)})),
			want: field.ErrorList{
				field.Invalid(tmeta.Child("annotations"), fmt.Sprintf("%d bytes", budget+1), fmt.Sprintf(
					"may total at most %d bytes, leaving %d for the annotations the dispatcher adds", budget, AnnotationReserve)),
			},
		},
		"copied ScaledJob annotations over the budget": {
			sj: makeScaledJob(func(sj *ScaledJob) {
				sj.Annotations = map[string]string{"a": strings.Repeat("x", budget), AnnotationPaused: "true"}
			}),
			want: field.ErrorList{
				field.Invalid(annotations, fmt.Sprintf("%d bytes", budget+1), fmt.Sprintf(
					"the annotations copied onto every Job (all but %s and kubedispatch.io/ keys) may total at most %d bytes, leaving %d for the dispatcher's own",
					corev1.LastAppliedConfigAnnotation, budget, AnnotationReserve)),
			},
		},
		"annotations not copied onto Jobs do not count": {
			sj: makeScaledJob(func(sj *ScaledJob) {
				sj.Annotations = map[string]string{corev1.LastAppliedConfigAnnotation: strings.Repeat("x", budget), "a": "b"}
			}),
		},
		"trigger named like an unnamed trigger next to it": {
			sj: makeScaledJob(withTriggers(
				ScaleTrigger{Type: "aws-sqs-queue", Name: "aws-sqs-queue[1]"},
				ScaleTrigger{Type: "aws-sqs-queue"},
			)),
			want: field.ErrorList{
				field.Invalid(triggers.Index(0).Child("name"), "aws-sqs-queue[1]", ReservedTriggerNameMessage),
				field.Duplicate(triggers.Index(1).Child("name"), "aws-sqs-queue[1]"),
			},
		},
		"trigger name in the reserved form alone": {
			sj: makeScaledJob(withTriggers(ScaleTrigger{Type: "cron", Name: "cron[7]"})),
			want: field.ErrorList{
				field.Invalid(triggers.Index(0).Child("name"), "cron[7]", ReservedTriggerNameMessage),
			},
		},
		"brackets without a trailing number are a name": {
			sj: makeScaledJob(withTriggers(
				ScaleTrigger{Type: "cron", Name: "cron[a]"},
				ScaleTrigger{Type: "cron", Name: "[1]cron"},
				ScaleTrigger{Type: "cron", Name: "cron[]"},
				ScaleTrigger{Type: "cron"},
			)),
		},
		"128 metadata keys": {
			sj: makeScaledJob(withMetadata(manyKeys(MaxTriggerMetadataKeys))),
		},
		"129 metadata keys": {
			sj:   makeScaledJob(withMetadata(manyKeys(MaxTriggerMetadataKeys + 1))),
			want: field.ErrorList{field.TooMany(triggers.Index(0).Child("metadata"), MaxTriggerMetadataKeys+1, MaxTriggerMetadataKeys)},
		},
		"metadata value of 8192 characters, multi-byte": {
			sj: makeScaledJob(withMetadata(map[string]string{"queueURL": strings.Repeat("é", MaxTriggerMetadataValueLength)})),
		},
		"metadata value of 1 MB": {
			sj: makeScaledJob(withMetadata(map[string]string{"queueURL": strings.Repeat("x", 1<<20)})),
			want: field.ErrorList{
				field.TooLongCharacters(triggers.Index(0).Child("metadata").Key("queueURL"), "", MaxTriggerMetadataValueLength),
			},
		},
		"metadata key of 254 characters": {
			sj: makeScaledJob(withMetadata(map[string]string{strings.Repeat("k", 254): "v"})),
			want: field.ErrorList{
				field.Invalid(triggers.Index(0).Child("metadata"), strings.Repeat("k", 254),
					"keys may have at most 253 characters, this one has 254"),
			},
		},
		"trigger type and authenticationRef name of 254 characters": {
			sj: makeScaledJob(withTriggers(ScaleTrigger{Type: strings.Repeat("t", 254),
				AuthenticationRef: &AuthenticationRef{Name: strings.Repeat("a", 254)}})),
			want: field.ErrorList{
				field.TooLongCharacters(triggers.Index(0).Child("type"), "", MaxTriggerTypeLength),
				field.TooLongCharacters(triggers.Index(0).Child("authenticationRef", "name"), "", MaxAuthenticationRefNameLength),
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := tc.sj.Validate()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Validate() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// The messages a person reads: the reason, and the label that is wrong.
func TestValidateNamesAndSizesMessages(t *testing.T) {
	tests := map[string]struct {
		sj   *ScaledJob
		want string
	}{
		"64-character name": {
			sj: makeScaledJob(func(sj *ScaledJob) { sj.Name = strings.Repeat("a", 64) }),
			want: `metadata.name: Invalid value: "` + strings.Repeat("a", 64) + `": must be no more than 63 characters: ` +
				`the name of a ScaledJob is the value of the label kubedispatch.io/scaledjob on its Jobs and pods, ` +
				`and label values are limited to 63 characters (this one has 64)`,
		},
		"template label value": {
			sj: makeScaledJob(func(sj *ScaledJob) {
				sj.Spec.JobTargetRef.Template.Labels = map[string]string{"team": strings.Repeat("v", 64)}
			}),
			want: `spec.jobTargetRef.template.metadata.labels[team]: Invalid value: "` + strings.Repeat("v", 64) +
				`": must be no more than 63 bytes`,
		},
		"trigger name in the reserved form": {
			sj: makeScaledJob(withTriggers(ScaleTrigger{Type: "aws-sqs-queue", Name: "aws-sqs-queue[1]"}, ScaleTrigger{Type: "aws-sqs-queue"})),
			want: `[spec.triggers[0].name: Invalid value: "aws-sqs-queue[1]": must not end in [<number>]: that form is the name ` +
				`of an unnamed trigger (<type>[<index>]) in status, events and metrics, ` +
				`spec.triggers[1].name: Duplicate value: "aws-sqs-queue[1]"]`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := tc.sj.Validate().ToAggregate().Error()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Validate() message mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// The same spec gives the same message on every tick (the dispatcher emits an InvalidSpec event when it changes).
func TestValidateIsStable(t *testing.T) {
	sj := makeScaledJob(func(sj *ScaledJob) {
		sj.Spec.JobTargetRef.Template.Labels = map[string]string{}
		sj.Spec.Triggers[0].Metadata = map[string]string{}
		for i := range 20 {
			sj.Spec.JobTargetRef.Template.Labels[fmt.Sprintf("l%d", i)] = strings.Repeat("v", 64)
			sj.Spec.Triggers[0].Metadata[fmt.Sprintf("k%d", i)] = strings.Repeat("x", MaxTriggerMetadataValueLength+1)
		}
	})
	first := sj.Validate().ToAggregate().Error()
	for range 20 {
		if got := sj.Validate().ToAggregate().Error(); got != first {
			t.Fatalf("Validate() message changed between calls:\n%s\n%s", first, got)
		}
	}
}

func TestJobNameLimit(t *testing.T) {
	indexed := ptr.To(batchv1.IndexedCompletion)
	tests := map[string]struct {
		spec batchv1.JobSpec
		want int
	}{
		"default":                         {spec: batchv1.JobSpec{}, want: 63},
		"NonIndexed":                      {spec: batchv1.JobSpec{CompletionMode: ptr.To(batchv1.NonIndexedCompletion), Completions: ptr.To[int32](5)}, want: 63},
		"Indexed without completions":     {spec: batchv1.JobSpec{CompletionMode: indexed}, want: 63},
		"Indexed, 0 completions":          {spec: batchv1.JobSpec{CompletionMode: indexed, Completions: ptr.To[int32](0)}, want: 63},
		"Indexed, 1 completion: -0":       {spec: batchv1.JobSpec{CompletionMode: indexed, Completions: ptr.To[int32](1)}, want: 61},
		"Indexed, 10 completions: -9":     {spec: batchv1.JobSpec{CompletionMode: indexed, Completions: ptr.To[int32](10)}, want: 61},
		"Indexed, 11 completions: -10":    {spec: batchv1.JobSpec{CompletionMode: indexed, Completions: ptr.To[int32](11)}, want: 60},
		"Indexed, most int32 completions": {spec: batchv1.JobSpec{CompletionMode: indexed, Completions: ptr.To[int32](math.MaxInt32)}, want: 52},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := JobNameLimit(&tc.spec); got != tc.want {
				t.Errorf("JobNameLimit() = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestEffectiveName(t *testing.T) {
	tests := map[string]struct {
		trigger ScaleTrigger
		index   int
		want    string
	}{
		"named":            {trigger: ScaleTrigger{Type: "cron", Name: "nightly"}, index: 3, want: "nightly"},
		"unnamed":          {trigger: ScaleTrigger{Type: "aws-sqs-queue"}, index: 0, want: "aws-sqs-queue[0]"},
		"unnamed, index 1": {trigger: ScaleTrigger{Type: "aws-sqs-queue"}, index: 1, want: "aws-sqs-queue[1]"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.trigger.EffectiveName(tc.index)); diff != "" {
				t.Errorf("EffectiveName() mismatch (-want +got):\n%s", diff)
			}
			// Every unnamed trigger's name is in the reserved form, so no trigger's own name can equal it.
			if tc.trigger.Name == "" && !reservedTriggerName.MatchString(tc.want) {
				t.Errorf("EffectiveName() = %q does not match the reserved form %s", tc.want, ReservedTriggerNamePattern)
			}
		})
	}
}

func TestCopiedToJobs(t *testing.T) {
	tests := map[string]struct {
		key  string
		want bool
	}{
		"user annotation":              {key: "example.com/owner", want: true},
		"unprefixed":                   {key: "owner", want: true},
		"kubectl last-applied":         {key: corev1.LastAppliedConfigAnnotation, want: false},
		"pause annotation":             {key: AnnotationPaused, want: false},
		"generation annotation":        {key: AnnotationGeneration, want: false},
		"group without the slash":      {key: "kubedispatch.io", want: true},
		"subdomain of the group":       {key: "x.kubedispatch.io/a", want: true},
		"group as a prefix of a group": {key: "kubedispatch.iox/a", want: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := CopiedToJobs(tc.key); got != tc.want {
				t.Errorf("CopiedToJobs(%q) = %v, want %v", tc.key, got, tc.want)
			}
		})
	}
}

// TestCRDLimits keeps the schema's bounds (markers and CEL rules) in step with the constants Validate uses.
func TestCRDLimits(t *testing.T) {
	schema := readCRDSchema(t, "kubedispatch.io_scaledjobs.yaml")
	trigger := prop(t, schema, "spec", "triggers").Items.Schema

	type rule struct{ Rule, Message string }
	rules := func(s *apiextensionsv1.JSONSchemaProps) []rule {
		var out []rule
		for _, r := range s.XValidations {
			out = append(out, rule{Rule: r.Rule, Message: r.Message})
		}
		return out
	}
	maxLength := func(s apiextensionsv1.JSONSchemaProps) int64 {
		if s.MaxLength == nil {
			return -1
		}
		return *s.MaxLength
	}
	md := trigger.Properties["metadata"]
	name := trigger.Properties["name"]
	auth := trigger.Properties["authenticationRef"].Properties["name"]

	tests := map[string]struct {
		got, want any
	}{
		"metadata.name rule": {
			got:  rules(schema),
			want: []rule{{Rule: "size(self.metadata.name) <= " + strconv.Itoa(MaxScaledJobNameLength), Message: "metadata.name " + NameTooLongMessage}},
		},
		"triggers[].name rule": {
			got:  rules(&name),
			want: []rule{{Rule: "!self.matches(r'" + ReservedTriggerNamePattern + "')", Message: ReservedTriggerNameMessage}},
		},
		"triggers[].name maxLength": {got: maxLength(name), want: int64(MaxTriggerNameLength)},
		"triggers[].type maxLength": {got: maxLength(trigger.Properties["type"]), want: int64(MaxTriggerTypeLength)},
		"triggers[].authenticationRef.name maxLength": {
			got: maxLength(auth), want: int64(MaxAuthenticationRefNameLength),
		},
		"triggers[].metadata maxProperties": {got: *md.MaxProperties, want: int64(MaxTriggerMetadataKeys)},
		"triggers[].metadata rule": {
			got: rules(&md),
			want: []rule{{
				Rule: fmt.Sprintf("self.all(k, size(k) <= %d && size(self[k]) <= %d)", MaxTriggerMetadataKeyLength, MaxTriggerMetadataValueLength),
				Message: fmt.Sprintf("metadata keys may have at most %d characters, values at most %d characters",
					MaxTriggerMetadataKeyLength, MaxTriggerMetadataValueLength),
			}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.got); diff != "" {
				t.Errorf("CRD mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// The CEL rule's regular expression means in CEL (RE2) what it means in Go (also RE2).
func TestReservedTriggerNamePattern(t *testing.T) {
	re := regexp.MustCompile(ReservedTriggerNamePattern)
	for name, want := range map[string]bool{
		"aws-sqs-queue[0]": true, "cron[12]": true, "[3]": true, "a[1]b": false, "a[]": false, "a[x]": false,
		"a[1": false, "a1]": false, "orders": false, "": false,
	} {
		if got := re.MatchString(name); got != want {
			t.Errorf("%q matches %s: %v, want %v", name, ReservedTriggerNamePattern, got, want)
		}
	}
}
