package dispatch

import (
	"time"

	"fmt"
	"math"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/jobtemplate"
)

// fuzzScaledJob is what FuzzScaledJob varies; every other field is a fixed valid value.
type fuzzScaledJob struct {
	name                    string
	sjLabel, sjAnnotation   string // a label value and an annotation value of the ScaledJob itself
	labelKey, labelValue    string // one pod template label
	annotationKey           string // one pod template annotation, annotationSize bytes long
	annotationSize          uint32
	sjAnnotationSize        uint32 // size of one more ScaledJob annotation, copied onto every Job
	trigger0, trigger1      string // names of the first two triggers
	triggers                uint8  // how many triggers (the others unnamed)
	metadataKeys            uint8
	metadataValueSize       uint16
	minV, maxV              int32
	minSet, maxSet          bool
	strategy, calculation   string
	message                 bool // dispatch.mode message
	indexed                 bool
	completions             int32
	backlog                 float64
	running                 int64
	attempt                 int32
	messageID, messageQueue string
}

func (in fuzzScaledJob) build() *v1alpha1.ScaledJob {
	sj := &v1alpha1.ScaledJob{
		ObjectMeta: metav1.ObjectMeta{
			Name: in.name, Namespace: "batch", UID: types.UID("0f9e1c1e-8d0a-4a55-9f3c-2b7c7f0d2a11"), Generation: 7,
			Labels:      map[string]string{"team": in.sjLabel},
			Annotations: map[string]string{"example.com/owner": in.sjAnnotation},
		},
		Spec: v1alpha1.ScaledJobSpec{
			JobTargetRef: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      map[string]string{in.labelKey: in.labelValue},
					Annotations: map[string]string{in.annotationKey: strings.Repeat("a", int(in.annotationSize%(300<<10)))},
				},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "worker", Image: "example.com/worker:1"}}},
			}},
			ScalingStrategy: v1alpha1.ScalingStrategy{Strategy: in.strategy, MultipleScalersCalculation: in.calculation},
		},
	}
	if n := in.sjAnnotationSize % (300 << 10); n > 0 {
		sj.Annotations["example.com/big"] = strings.Repeat("b", int(n))
	}
	if in.minSet {
		sj.Spec.MinReplicaCount = ptr.To(in.minV)
	}
	if in.maxSet {
		sj.Spec.MaxReplicaCount = ptr.To(in.maxV)
	}
	if in.indexed {
		sj.Spec.JobTargetRef.CompletionMode = ptr.To(batchv1.IndexedCompletion)
		sj.Spec.JobTargetRef.Completions = ptr.To(in.completions)
	}
	metadata := map[string]string{}
	for i := range int(in.metadataKeys) {
		metadata[fmt.Sprintf("key%d", i)] = strings.Repeat("v", int(in.metadataValueSize)%(v1alpha1.MaxTriggerMetadataValueLength+16))
	}
	n := int(in.triggers)%(v1alpha1.MaxTriggers+2) + 1
	for i := range n {
		t := v1alpha1.ScaleTrigger{Type: "aws-sqs-queue"}
		switch i {
		case 0:
			t.Name, t.Metadata = in.trigger0, metadata
		case 1:
			t.Name = in.trigger1
		}
		sj.Spec.Triggers = append(sj.Spec.Triggers, t)
	}
	if in.message {
		sj.Spec.Dispatch = &v1alpha1.Dispatch{Mode: v1alpha1.ModeMessage}
	}
	return sj
}

// admitted reports whether the API server stores sj at all: its name, labels and annotations pass the checks
// every object gets, and its name passes the CRD's CEL rule (which Validate repeats).
func admitted(sj *v1alpha1.ScaledJob) bool {
	return len(apivalidation.ValidateObjectMeta(&sj.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))) == 0
}

// refusals returns what the API server would refuse in the metadata of a Job the dispatcher creates (with the
// create token it adds) and of its pod template (with the labels the Job controller adds): the checks that do
// not need the pod spec's semantics.
func refusals(job *batchv1.Job) field.ErrorList {
	job = job.DeepCopy()
	job.Annotations[v1alpha1.AnnotationCreateToken] = "x2k9pq7m3z" // as createOne does: two random suffixes
	meta := field.NewPath("metadata")
	errs := apivalidation.ValidateObjectMeta(&job.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, meta)
	// The Job controller's selector labels carry the name: it must be a label value.
	for _, msg := range validation.IsValidLabelValue(job.Name) {
		errs = append(errs, field.Invalid(meta.Child("name"), job.Name, msg))
	}
	if s := job.Spec; s.CompletionMode != nil && *s.CompletionMode == batchv1.IndexedCompletion && s.Completions != nil && *s.Completions > 0 {
		host := fmt.Sprintf("%s-%d", job.Name, *s.Completions-1)
		for _, msg := range validation.IsDNS1123Label(host) {
			errs = append(errs, field.Invalid(meta.Child("name"), job.Name, "pod hostname "+host+": "+msg))
		}
	}
	tm := field.NewPath("spec", "template", "metadata")
	pod := map[string]string{batchv1.JobNameLabel: job.Name, batchv1.ControllerUidLabel: "0f9e1c1e-8d0a-4a55-9f3c-2b7c7f0d2a11"}
	for k, v := range job.Spec.Template.Labels {
		pod[k] = v
	}
	errs = append(errs, metav1validation.ValidateLabels(pod, tm.Child("labels"))...)
	return append(errs, apivalidation.ValidateAnnotations(job.Spec.Template.Annotations, tm.Child("annotations"))...)
}

// FuzzScaledJob runs Validate, Decide and the Job builders on arbitrary ScaledJobs that the API server stores.
// Nothing panics; a ScaledJob that Validate accepts has unique trigger names, a decision that creates 0 or more
// Jobs, and Jobs (and payload Secrets) whose names, labels and annotations the API server accepts.
func FuzzScaledJob(f *testing.F) {
	type seed = fuzzScaledJob
	for _, s := range []seed{
		{name: "pdf", labelKey: "team", labelValue: "pdf", annotationKey: "note", triggers: 1, maxSet: true, maxV: 10,
			backlog: 3, attempt: 1, messageID: "m1", messageQueue: "https://sqs/1/q"},
		{name: strings.Repeat("a", 63), labelKey: "app", labelValue: "x", annotationKey: "n", triggers: 2,
			backlog: 100, attempt: 3, message: true, messageID: "id", messageQueue: "q"},
		{name: strings.Repeat("a", 64), labelKey: "app", labelValue: "x", annotationKey: "n", triggers: 1},
		{name: strings.Repeat("b", 253), labelKey: "app", labelValue: "x", annotationKey: "n", triggers: 1},
		{name: "t", labelKey: "team", labelValue: strings.Repeat("v", 64), annotationKey: "n", triggers: 1},
		{name: "t", labelKey: "bad key", labelValue: "v", annotationKey: "Bad Key", triggers: 1},
		{name: "t", labelKey: "k", annotationKey: "n", trigger0: "aws-sqs-queue[1]", triggers: 2},
		{name: "t", labelKey: "k", annotationKey: "n", trigger0: "a", trigger1: "a", triggers: 3},
		{name: "t", labelKey: "k", annotationKey: "n", triggers: 255, metadataKeys: 129, metadataValueSize: 9000},
		{name: "t", labelKey: "k", annotationKey: "n", triggers: 1, annotationSize: 256 << 10},
		{name: "t", labelKey: "k", annotationKey: "n", triggers: 1, sjAnnotationSize: (256 << 10) - 100},
		{name: "a.b.c", labelKey: "k", annotationKey: "n", triggers: 1, indexed: true, completions: 10},
		{name: strings.Repeat("c", 63), labelKey: "k", annotationKey: "n", triggers: 1, indexed: true,
			completions: math.MaxInt32, message: true, attempt: 100, messageID: "x"},
		{name: "t", labelKey: "k", annotationKey: "n", triggers: 1, minSet: true, minV: 5, maxSet: true, maxV: 2,
			strategy: "custom", calculation: "median", running: math.MaxInt64, backlog: math.Inf(1)},
	} {
		f.Add(s.name, s.sjLabel, s.sjAnnotation, s.labelKey, s.labelValue, s.annotationKey, s.annotationSize,
			s.sjAnnotationSize, s.trigger0, s.trigger1, s.triggers, s.metadataKeys, s.metadataValueSize, s.minV, s.maxV,
			s.minSet, s.maxSet, s.strategy, s.calculation, s.message, s.indexed, s.completions, s.backlog, s.running,
			s.attempt, s.messageID, s.messageQueue)
	}
	f.Fuzz(func(t *testing.T, name, sjLabel, sjAnnotation, labelKey, labelValue, annotationKey string,
		annotationSize, sjAnnotationSize uint32, trigger0, trigger1 string, triggers, metadataKeys uint8,
		metadataValueSize uint16, minV, maxV int32, minSet, maxSet bool, strategy, calculation string,
		message, indexed bool, completions int32, backlog float64, running int64, attempt int32,
		messageID, messageQueue string) {
		in := fuzzScaledJob{name: name, sjLabel: sjLabel, sjAnnotation: sjAnnotation, labelKey: labelKey,
			labelValue: labelValue, annotationKey: annotationKey, annotationSize: annotationSize,
			sjAnnotationSize: sjAnnotationSize, trigger0: trigger0, trigger1: trigger1, triggers: triggers,
			metadataKeys: metadataKeys, metadataValueSize: metadataValueSize, minV: minV, maxV: maxV, minSet: minSet,
			maxSet: maxSet, strategy: strategy, calculation: calculation, message: message, indexed: indexed,
			completions: completions, backlog: backlog, running: running, attempt: attempt,
			messageID: messageID, messageQueue: messageQueue}
		sj := in.build()
		if !admitted(sj) {
			return // the API server refuses the ScaledJob itself
		}
		before := sj.DeepCopy()
		errs := sj.Validate()
		if again := sj.Validate(); fmt.Sprint(errs) != fmt.Sprint(again) {
			t.Fatalf("Validate() is not stable:\n%v\n%v", errs, again)
		}
		if len(errs) > 0 {
			return // InvalidSpec: nothing is built
		}

		// Trigger names are unique after defaulting, so no reading hides another in status or the decision.
		names := map[string]bool{}
		var readings []TriggerReading
		for i := range sj.Spec.Triggers {
			n := sj.Spec.Triggers[i].EffectiveName(i)
			if names[n] {
				t.Fatalf("Validate() accepted two triggers named %q", n)
			}
			names[n] = true
			readings = append(readings, TriggerReading{Name: n, Backlog: backlog, Target: 1, Active: backlog > 0})
		}

		if !math.IsNaN(backlog) {
			var r Reconciler
			_, ev := EffectiveCapacity(sj, time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC))
			d := Decide(r.inputs(sj, observation{readings: readings, running: running}, ev.Limits))
			if d.Create < 0 || d.Reason == "" {
				t.Fatalf("Decide() = %+v, want Create >= 0 and a reason", d)
			}
		}

		if sj.Spec.IsMessageMode() {
			id, queue := clip(messageID, 128), clip(messageQueue, 256) // queues' ids and names are short
			job, secret, err := jobtemplate.BuildMessage(sj, jobtemplate.MessageInfo{ID: id, Queue: queue,
				Body: []byte("{}"), Attempt: attempt})
			switch {
			case attempt < 1:
				if err == nil {
					t.Fatalf("BuildMessage() with attempt %d = nil error", attempt)
				}
			case err != nil:
				t.Fatalf("BuildMessage() = %v for a ScaledJob Validate() accepts", err)
			default:
				if errs := refusals(job); len(errs) > 0 {
					t.Fatalf("the API server would refuse the message Job %q: %v", job.Name, errs)
				}
				if errs := apivalidation.ValidateObjectMeta(&secret.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata")); len(errs) > 0 {
					t.Fatalf("the API server would refuse the payload Secret %q: %v", secret.Name, errs)
				}
			}
		} else {
			job, err := jobtemplate.Build(sj, jobtemplate.JobName(sj, func() string { return "x2k9p" }))
			if err != nil {
				t.Fatalf("Build() = %v for a ScaledJob Validate() accepts", err)
			}
			if errs := refusals(job); len(errs) > 0 {
				t.Fatalf("the API server would refuse the Job %q: %v", job.Name, errs)
			}
		}
		if !apiequality.Semantic.DeepEqual(before, sj) {
			t.Fatal("Validate, Decide or a builder mutated the ScaledJob")
		}
	})
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
