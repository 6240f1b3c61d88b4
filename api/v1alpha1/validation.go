package v1alpha1

import (
	"fmt"
	"strings"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Bounds on spec.triggers. They keep the CRD's trigger-name uniqueness rule cheap enough for the API server to
// accept it.
const (
	// MaxTriggers is the largest number of triggers one ScaledJob may have.
	MaxTriggers = 64
	// MaxTriggerNameLength is the longest trigger name.
	MaxTriggerNameLength = 253
)

// MaxMinReplicaCount is the largest minReplicaCount (and cron desiredReplicas) accepted: far above the 150000 pods
// Kubernetes is tested with per cluster, so it refuses only plain mistakes.
const MaxMinReplicaCount = 1000000

// Validate checks the parts of the ScaledJob that are static and independent of trigger types: the name and the
// annotations that go onto every Job, the Job template (its labels and annotations as the API server checks a
// pod's), replica bounds, history limits, enum values, the custom strategy's parameters, trigger names, the size of
// trigger metadata and trigger references. The meaning of trigger metadata is validated by each trigger type.
// Defaults are applied first, so unset fields are valid. Every error carries the field's path and says what was
// expected. The errors come in a stable order, so the same spec always gives the same message.
func (s *ScaledJob) Validate() field.ErrorList {
	meta := field.NewPath("metadata")
	errs := validateName(s.Name, &s.Spec.JobTargetRef, meta.Child("name"))
	errs = append(errs, validateCopiedAnnotations(s.Annotations, meta.Child("annotations"))...)
	return append(errs, validateSpec(&s.Spec, field.NewPath("spec"))...)
}

func validateSpec(s *ScaledJobSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, validateJobTarget(s, p)...)

	if v := s.PollingIntervalSeconds(); v < 1 {
		errs = append(errs, field.Invalid(p.Child("pollingInterval"), v, "must be at least 1 (seconds)"))
	}
	if v := s.SuccessfulHistoryLimit(); v < 0 {
		errs = append(errs, field.Invalid(p.Child("successfulJobsHistoryLimit"), v, "must be 0 or more"))
	}
	if v := s.FailedHistoryLimit(); v < 0 {
		errs = append(errs, field.Invalid(p.Child("failedJobsHistoryLimit"), v, "must be 0 or more"))
	}
	minR, maxR := s.MinReplicas(), s.MaxReplicas()
	if minR < 0 {
		errs = append(errs, field.Invalid(p.Child("minReplicaCount"), minR, "must be 0 or more"))
	}
	if minR > MaxMinReplicaCount {
		errs = append(errs, field.Invalid(p.Child("minReplicaCount"), minR, fmt.Sprintf("must be at most %d", MaxMinReplicaCount)))
	}
	if maxR < 1 {
		errs = append(errs, field.Invalid(p.Child("maxReplicaCount"), maxR, "must be at least 1"))
	}
	if minR > maxR {
		errs = append(errs, field.Invalid(p.Child("minReplicaCount"), minR,
			fmt.Sprintf("must not exceed maxReplicaCount (%d)", maxR)))
	}

	if r := s.Rollout; r != nil {
		rp := p.Child("rollout")
		errs = append(errs, validateEnum(rp.Child("strategy"), r.Strategy, RolloutGradual, RolloutImmediate)...)
		errs = append(errs, validateEnum(rp.Child("propagationPolicy"), r.PropagationPolicy,
			PropagationForeground, PropagationBackground)...)
	}
	errs = append(errs, validateScalingStrategy(&s.ScalingStrategy, p.Child("scalingStrategy"))...)
	errs = append(errs, validateTriggers(s.Triggers, p.Child("triggers"))...)
	errs = append(errs, validateWindowKeys(s, p.Child("triggers"))...)
	errs = append(errs, validateCapacityWindows(s.CapacityWindows, p.Child("capacityWindows"))...)
	errs = append(errs, validateDispatch(s, p)...)
	return errs
}

// validateJobTarget checks that jobTargetRef can become a Job's spec, and that envSourceContainerName names one
// of its containers.
func validateJobTarget(s *ScaledJobSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	pod := p.Child("jobTargetRef", "template", "spec")
	containers := s.JobTargetRef.Template.Spec.Containers
	if len(containers) == 0 {
		errs = append(errs, field.Required(pod.Child("containers"), "at least one container is required"))
	}
	tm := s.JobTargetRef.Template.ObjectMeta
	errs = append(errs, validateTemplateMetadata(tm.Labels, tm.Annotations, p.Child("jobTargetRef", "template", "metadata"))...)
	switch rp := s.JobTargetRef.Template.Spec.RestartPolicy; rp {
	case "", corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
	default:
		errs = append(errs, field.NotSupported(pod.Child("restartPolicy"), rp,
			[]string{string(corev1.RestartPolicyOnFailure), string(corev1.RestartPolicyNever)}))
	}
	if name := s.EnvSourceContainerName; name != "" {
		names := make([]string, 0, len(containers))
		found := false
		for _, c := range containers {
			names = append(names, c.Name)
			found = found || c.Name == name
		}
		if !found {
			errs = append(errs, field.Invalid(p.Child("envSourceContainerName"), name,
				fmt.Sprintf("must name a container of jobTargetRef.template.spec.containers (have %q)",
					strings.Join(names, ", "))))
		}
	}
	return errs
}

func validateScalingStrategy(s *ScalingStrategy, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, validateEnum(p.Child("strategy"), s.Strategy,
		StrategyDefault, StrategyCustom, StrategyAccurate, StrategyEager)...)
	errs = append(errs, validateEnum(p.Child("multipleScalersCalculation"), s.MultipleScalersCalculation,
		CalculationMax, CalculationMin, CalculationAvg, CalculationSum)...)

	pp := p.Child("customScalingRunningJobPercentage")
	switch v := s.CustomScalingRunningJobPercentage; {
	case v != "":
		if _, err := parsePercentage(v); err != nil {
			errs = append(errs, field.Invalid(pp, v, `must be a decimal number between 0 and 1, such as "0.5"`))
		}
	case s.Strategy == StrategyCustom:
		errs = append(errs, field.Required(pp, `required when strategy is "custom": a decimal number between 0 and 1, such as "0.5"`))
	}

	seen := make(map[string]bool, len(s.PendingPodConditions))
	for i, c := range s.PendingPodConditions {
		cp := p.Child("pendingPodConditions").Index(i)
		switch {
		case c == "":
			errs = append(errs, field.Required(cp, `must name a pod condition type, such as "Ready"`))
		case seen[c]:
			errs = append(errs, field.Duplicate(cp, c))
		}
		seen[c] = true
	}
	return errs
}

func validateTriggers(ts []ScaleTrigger, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case len(ts) == 0:
		errs = append(errs, field.Required(p, "at least one trigger is required"))
	case len(ts) > MaxTriggers:
		errs = append(errs, field.TooMany(p, len(ts), MaxTriggers))
	}
	names := make(map[string]bool, len(ts))
	for i, t := range ts {
		tp := p.Index(i)
		switch {
		case t.Type == "":
			errs = append(errs, field.Required(tp.Child("type"), `a trigger type is required, such as "aws-sqs-queue"`))
		case utf8.RuneCountInString(t.Type) > MaxTriggerTypeLength:
			errs = append(errs, field.TooLongCharacters(tp.Child("type"), t.Type, MaxTriggerTypeLength))
		}
		if utf8.RuneCountInString(t.Name) > MaxTriggerNameLength {
			errs = append(errs, field.TooLongCharacters(tp.Child("name"), t.Name, MaxTriggerNameLength))
		}
		if reservedTriggerName.MatchString(t.Name) {
			errs = append(errs, field.Invalid(tp.Child("name"), t.Name, ReservedTriggerNameMessage))
		}
		// Unnamed triggers are "<type>[<index>]" in status and in the decision: effective names must be unique,
		// or one trigger would hide another.
		if name := t.EffectiveName(i); names[name] {
			errs = append(errs, field.Duplicate(tp.Child("name"), name))
		} else {
			names[name] = true
		}
		errs = append(errs, validateTriggerMetadata(t.Metadata, tp.Child("metadata"))...)
		if t.MetricType != "" {
			errs = append(errs, field.Forbidden(tp.Child("metricType"),
				"must be empty for ScaledJob triggers: the backlog is always divided by the per-Job target"))
		}
		if ref := t.AuthenticationRef; ref != nil {
			rp := tp.Child("authenticationRef")
			switch {
			case ref.Name == "":
				errs = append(errs, field.Required(rp.Child("name"),
					"the name of a TriggerAuthentication or ClusterTriggerAuthentication is required"))
			case utf8.RuneCountInString(ref.Name) > MaxAuthenticationRefNameLength:
				errs = append(errs, field.TooLongCharacters(rp.Child("name"), ref.Name, MaxAuthenticationRefNameLength))
			}
			errs = append(errs, validateEnum(rp.Child("kind"), ref.Kind,
				KindTriggerAuthentication, KindClusterTriggerAuthentication)...)
		}
	}
	return errs
}

// validateEnum accepts the empty string (the field's default applies) and the given values.
func validateEnum(p *field.Path, v string, allowed ...string) field.ErrorList {
	if v == "" {
		return nil
	}
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return field.ErrorList{field.NotSupported(p, v, allowed)}
}
