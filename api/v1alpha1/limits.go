package v1alpha1

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Limits on names and sizes. Each is enforced at admission by the CRD schema (a marker on the field, or a CEL rule)
// and again by Validate, for objects that did not go through the API server; crd_test.go keeps the two in step.
const (
	// MaxScaledJobNameLength is the longest metadata.name of a ScaledJob: the name is the value of the
	// LabelScaledJob label on every Job, pod and payload Secret, and label values are at most 63 characters.
	MaxScaledJobNameLength = validation.LabelValueMaxLength
	// MaxTriggerMetadataKeys is the most keys one trigger's metadata may have. The trigger types take at most
	// about 30.
	MaxTriggerMetadataKeys = 128
	// MaxTriggerMetadataKeyLength is the longest key of a trigger's metadata, in characters.
	MaxTriggerMetadataKeyLength = 253
	// MaxTriggerMetadataValueLength is the longest value of a trigger's metadata, in characters (8 KiB of ASCII):
	// queue URLs, subscription names and cron expressions are far shorter. Credentials do not belong in metadata
	// (a TriggerAuthentication reads them from a Secret).
	MaxTriggerMetadataValueLength = 8192
	// MaxTriggerTypeLength is the longest trigger type.
	MaxTriggerTypeLength = 253
	// MaxAuthenticationRefNameLength is the longest authenticationRef.name: an object name.
	MaxAuthenticationRefNameLength = 253
	// AnnotationReserve is the room, in bytes, Validate keeps free below the API server's limit on the total size
	// of an object's annotations (apivalidation.TotalAnnotationSizeLimitB, 256 KiB), both in the annotations a Job
	// gets from its ScaledJob and in the pod template's: the dispatcher adds its own (generation, create token, and
	// in message mode the message id, queue, delivery and enqueue time).
	AnnotationReserve = 4 << 10
)

// reservedTriggerName matches the names of unnamed triggers, "<type>[<index>]". The CRD's CEL rule on
// spec.triggers[].name carries the same expression (checked by TestCRDLimits).
var reservedTriggerName = regexp.MustCompile(ReservedTriggerNamePattern)

// ReservedTriggerNamePattern is the regular expression a trigger's own name must not match: a name ending in
// "[<number>]" could equal the name an unnamed trigger gets (see ScaleTrigger.EffectiveName).
const ReservedTriggerNamePattern = `\[[0-9]+\]$`

// ReservedTriggerNameMessage says why a trigger name is refused; the CRD's CEL rule gives the same message.
const ReservedTriggerNameMessage = "must not end in [<number>]: that form is the name of an unnamed trigger (<type>[<index>]) in status, events and metrics"

// EffectiveName is the trigger's name in status, events, metrics and the decision: its name, or "<type>[<index>]"
// (such as "aws-sqs-queue[0]") when it has none, index being its position in spec.triggers. Validate makes sure
// the effective names of a ScaledJob's triggers are unique.
func (t *ScaleTrigger) EffectiveName(index int) string {
	if t.Name != "" {
		return t.Name
	}
	return t.Type + "[" + strconv.Itoa(index) + "]"
}

// JobNameLimit is the longest name a Job made from spec may have: 63 characters, since the Job controller copies
// the name into the batch.kubernetes.io/job-name label of the Job's pods; for an Indexed Job, less the length of
// "-<completions-1>": its pods' hostnames are "<job name>-<index>" and must be DNS labels, or the API server
// refuses the Job.
func JobNameLimit(spec *batchv1.JobSpec) int {
	if !indexed(spec) {
		return validation.DNS1123LabelMaxLength
	}
	return validation.DNS1123LabelMaxLength - len("-"+strconv.Itoa(int(*spec.Completions)-1))
}

// indexed reports whether spec is an Indexed Job with completions, the case the API server checks pod hostnames
// for.
func indexed(spec *batchv1.JobSpec) bool {
	return spec.CompletionMode != nil && *spec.CompletionMode == batchv1.IndexedCompletion &&
		spec.Completions != nil && *spec.Completions > 0
}

// CopiedToJobs reports whether a ScaledJob annotation is copied onto its Jobs. kubectl's copy of the whole applied
// object is not: it can be large and describes the ScaledJob, not the Job. Nor are kubedispatch.io/ keys: they
// configure the dispatcher (a paused ScaledJob must not label its Jobs paused) or are set by the dispatcher itself.
func CopiedToJobs(key string) bool {
	return key != corev1.LastAppliedConfigAnnotation && !strings.HasPrefix(key, GroupVersion.Group+"/")
}

// validateName checks metadata.name against the label-value limit, and, for an Indexed Job template, that the
// Job names made from it are DNS labels (no '.'), as the pods' hostnames must be. The API server has already
// checked that the name is a DNS subdomain.
func validateName(name string, spec *batchv1.JobSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(name) > MaxScaledJobNameLength {
		errs = append(errs, field.Invalid(p, name, fmt.Sprintf("%s (this one has %d)", NameTooLongMessage, len(name))))
	}
	if indexed(spec) && strings.Contains(name, ".") {
		errs = append(errs, field.Invalid(p, name, "must not contain '.' when spec.jobTargetRef.completionMode is Indexed: "+
			"the Job's name is part of its pods' hostnames (<job name>-<index>), which must be DNS labels"))
	}
	return errs
}

// NameTooLongMessage says why a ScaledJob name is limited. The CRD's CEL rule on metadata.name gives the same
// message (checked by TestCRDLimits).
const NameTooLongMessage = "must be no more than 63 characters: the name of a ScaledJob is the value of the label kubedispatch.io/scaledjob on its Jobs and pods, and label values are limited to 63 characters"

// validateCopiedAnnotations checks that the ScaledJob's annotations that go onto every Job leave AnnotationReserve
// free for the dispatcher's own.
func validateCopiedAnnotations(annotations map[string]string, p *field.Path) field.ErrorList {
	size := 0
	for k, v := range annotations {
		if CopiedToJobs(k) {
			size += len(k) + len(v)
		}
	}
	if limit := apivalidation.TotalAnnotationSizeLimitB - AnnotationReserve; size > limit {
		return field.ErrorList{field.Invalid(p, fmt.Sprintf("%d bytes", size), fmt.Sprintf(
			"the annotations copied onto every Job (all but %s and kubedispatch.io/ keys) may total at most %d bytes, leaving %d for the dispatcher's own",
			corev1.LastAppliedConfigAnnotation, limit, AnnotationReserve))}
	}
	return nil
}

// validateTemplateMetadata checks the pod template's labels and annotations as the API server checks a pod's,
// naming each offending key, and keeps AnnotationReserve free in the annotations.
func validateTemplateMetadata(labels, annotations map[string]string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	lp, ap := p.Child("labels"), p.Child("annotations")
	for _, k := range sortedKeys(labels) {
		errs = append(errs, metav1validation.ValidateLabels(map[string]string{k: labels[k]}, lp.Key(k))...)
	}
	size := 0
	for _, k := range sortedKeys(annotations) {
		errs = append(errs, apivalidation.ValidateAnnotations(map[string]string{k: ""}, ap.Key(k))...)
		size += len(k) + len(annotations[k])
	}
	if limit := apivalidation.TotalAnnotationSizeLimitB - AnnotationReserve; size > limit {
		errs = append(errs, field.Invalid(ap, fmt.Sprintf("%d bytes", size), fmt.Sprintf(
			"may total at most %d bytes, leaving %d for the annotations the dispatcher adds", limit, AnnotationReserve)))
	}
	return errs
}

// validateTriggerMetadata checks the number of keys and the length of each key and value.
func validateTriggerMetadata(md map[string]string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(md) > MaxTriggerMetadataKeys {
		errs = append(errs, field.TooMany(p, len(md), MaxTriggerMetadataKeys))
	}
	for _, k := range sortedKeys(md) {
		if n := utf8.RuneCountInString(k); n > MaxTriggerMetadataKeyLength {
			errs = append(errs, field.Invalid(p, k, fmt.Sprintf("keys may have at most %d characters, this one has %d",
				MaxTriggerMetadataKeyLength, n)))
		}
		if n := utf8.RuneCountInString(md[k]); n > MaxTriggerMetadataValueLength {
			errs = append(errs, field.TooLongCharacters(p.Key(k), md[k], MaxTriggerMetadataValueLength))
		}
	}
	return errs
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
