package v1alpha1

import (
	"fmt"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// MessageTriggerTypes are the trigger types message mode can receive from.
var MessageTriggerTypes = []string{"aws-sqs-queue", "gcp-pubsub", "azure-servicebus"}

// validateDispatch checks spec.dispatch: the mode, and in message mode the single queue trigger, the payload path
// and every parameter (one source, one destination, valid names).
func validateDispatch(s *ScaledJobSpec, p *field.Path) field.ErrorList {
	d := s.Dispatch
	if d == nil {
		return nil
	}
	dp := p.Child("dispatch")
	errs := validateEnum(dp.Child("mode"), d.Mode, ModeCount, ModeMessage)
	if v := d.MaxDeliveries; v != nil && (*v < 1 || *v > MaxMaxDeliveries) {
		errs = append(errs, field.Invalid(dp.Child("maxDeliveries"), *v, fmt.Sprintf("must be between 1 and %d", MaxMaxDeliveries)))
	}
	if !s.IsMessageMode() {
		return errs
	}
	switch {
	case len(s.Triggers) != 1:
		errs = append(errs, field.Invalid(p.Child("triggers"), len(s.Triggers),
			fmt.Sprintf("dispatch.mode message needs exactly one trigger, the queue to receive from (one of %s)", strings.Join(MessageTriggerTypes, ", "))))
	case !contains(MessageTriggerTypes, s.Triggers[0].Type):
		errs = append(errs, field.NotSupported(p.Child("triggers").Index(0).Child("type"), s.Triggers[0].Type, MessageTriggerTypes))
	}
	if dl := d.DeadLetter; dl != nil && len(s.Triggers) == 1 {
		typ := s.Triggers[0].Type
		if dl.QueueURL != "" && typ != "aws-sqs-queue" {
			errs = append(errs, field.Invalid(dp.Child("deadLetter", "queueURL"), dl.QueueURL, deadLetterHint(typ)))
		}
		if dl.Topic != "" && typ != "gcp-pubsub" {
			errs = append(errs, field.Invalid(dp.Child("deadLetter", "topic"), dl.Topic, deadLetterHint(typ)))
		}
		if dl.QueueURL != "" && !strings.HasPrefix(dl.QueueURL, "https://") && !strings.HasPrefix(dl.QueueURL, "http://") {
			errs = append(errs, field.Invalid(dp.Child("deadLetter", "queueURL"), dl.QueueURL, "must be an http(s) SQS queue URL"))
		}
	}
	if pl := d.Payload; pl != nil && pl.MountPath != "" {
		mp := dp.Child("payload", "mountPath")
		switch {
		case !path.IsAbs(pl.MountPath):
			errs = append(errs, field.Invalid(mp, pl.MountPath, "must be an absolute path"))
		case path.Clean(pl.MountPath) != pl.MountPath || strings.Contains(pl.MountPath, ":"):
			errs = append(errs, field.Invalid(mp, pl.MountPath, "must be a clean absolute path without '..', '//' or ':'"))
		case pl.MountPath == "/":
			errs = append(errs, field.Invalid(mp, pl.MountPath, "must not be the root directory"))
		}
	}
	errs = append(errs, validatePayloadPlacement(s, p)...)
	containers := map[string]bool{}
	for _, c := range s.JobTargetRef.Template.Spec.Containers {
		containers[c.Name] = true
	}
	for i, prm := range d.Parameters {
		errs = append(errs, validateParameter(prm, dp.Child("parameters").Index(i), containers)...)
	}
	return errs
}

func validateParameter(prm Parameter, p *field.Path, containers map[string]bool) field.ErrorList {
	var errs field.ErrorList
	fp, tp := p.Child("from"), p.Child("to")
	sources := 0
	for _, set := range []bool{prm.From.Attribute != "", prm.From.JSON != "", prm.From.Metadata != ""} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		errs = append(errs, field.Invalid(fp, sources, "exactly one of attribute, json or metadata is required"))
	}
	errs = append(errs, validateEnum(fp.Child("metadata"), prm.From.Metadata,
		MetadataMessageID, MetadataDeliveryAttempt, MetadataEnqueuedAt, MetadataQueue)...)
	if j := prm.From.JSON; j != "" {
		for _, part := range strings.Split(j, ".") {
			if part == "" {
				errs = append(errs, field.Invalid(fp.Child("json"), j, `must be a dotted path such as "customer.id" (no empty segments)`))
				break
			}
		}
	}
	targets := 0
	for _, set := range []bool{prm.To.Env != "", prm.To.PodAnnotation != "", prm.To.PodLabel != "", prm.To.Arg != nil} {
		if set {
			targets++
		}
	}
	if targets != 1 {
		errs = append(errs, field.Invalid(tp, targets, "exactly one of env, podAnnotation, podLabel or arg is required"))
	}
	if e := prm.To.Env; e != "" {
		for _, msg := range validation.IsEnvVarName(e) {
			errs = append(errs, field.Invalid(tp.Child("env"), e, msg))
		}
		if strings.HasPrefix(e, "KUBEDISPATCH_") {
			errs = append(errs, field.Invalid(tp.Child("env"), e, "the KUBEDISPATCH_ prefix is reserved for the variables the dispatcher sets"))
		}
	}
	if k := prm.To.PodAnnotation; k != "" {
		for _, msg := range validation.IsQualifiedName(strings.ToLower(k)) {
			errs = append(errs, field.Invalid(tp.Child("podAnnotation"), k, msg))
		}
		if strings.HasPrefix(k, GroupVersion.Group+"/") {
			errs = append(errs, field.Invalid(tp.Child("podAnnotation"), k, "the kubedispatch.io/ prefix is reserved for the annotations the dispatcher sets"))
		}
	}
	if k := prm.To.PodLabel; k != "" {
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, field.Invalid(tp.Child("podLabel"), k, msg))
		}
		if strings.HasPrefix(k, GroupVersion.Group+"/") || k == "batch.kubernetes.io/job-name" || k == "job-name" ||
			strings.HasPrefix(k, "batch.kubernetes.io/") || k == "controller-uid" {
			errs = append(errs, field.Invalid(tp.Child("podLabel"), k, "is reserved (set by the dispatcher or the Job controller)"))
		}
		if d := prm.Default; d != nil {
			for _, msg := range validation.IsValidLabelValue(*d) {
				errs = append(errs, field.Invalid(p.Child("default"), *d, "must be a valid label value: "+msg))
			}
		}
	}
	if a := prm.To.Arg; a != nil && a.Container != "" && !containers[a.Container] {
		errs = append(errs, field.Invalid(tp.Child("arg", "container"), a.Container, "must name a container of jobTargetRef.template.spec.containers"))
	}
	return errs
}

// deadLetterHint says which deadLetter field applies to a trigger type, for a field set on the wrong one.
func deadLetterHint(triggerType string) string {
	switch triggerType {
	case "aws-sqs-queue":
		return "does not apply to aws-sqs-queue triggers; use deadLetter.queueURL"
	case "gcp-pubsub":
		return "does not apply to gcp-pubsub triggers; use deadLetter.topic"
	case "azure-servicebus":
		return "does not apply to azure-servicebus triggers: Service Bus dead-letters into the entity's own $DeadLetterQueue; remove deadLetter"
	}
	return "does not apply to " + triggerType + " triggers"
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// validatePayloadPlacement refuses a template that already uses the payload's volume name or mounts something at
// the payload's mount path: every message's Job would fail to build.
func validatePayloadPlacement(s *ScaledJobSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	pod := p.Child("jobTargetRef", "template", "spec")
	for i, v := range s.JobTargetRef.Template.Spec.Volumes {
		if v.Name == PayloadVolume {
			errs = append(errs, field.Invalid(pod.Child("volumes").Index(i).Child("name"), v.Name,
				"is reserved in message mode for the message payload's volume"))
		}
	}
	mountPath := path.Clean(s.PayloadMountPath())
	check := func(kind string, cs []corev1.Container) {
		for i, c := range cs {
			for j, m := range c.VolumeMounts {
				if path.Clean(m.MountPath) == mountPath {
					errs = append(errs, field.Invalid(pod.Child(kind).Index(i).Child("volumeMounts").Index(j).Child("mountPath"), m.MountPath,
						"is where message mode mounts the payload (spec.dispatch.payload.mountPath): choose another path for one of them"))
				}
			}
		}
	}
	check("containers", s.JobTargetRef.Template.Spec.Containers)
	check("initContainers", s.JobTargetRef.Template.Spec.InitContainers)
	return errs
}
