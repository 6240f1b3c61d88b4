package v1alpha1

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Defaults applied when a ScaledJobSpec field is unset. The CRD applies the same values on admission; the
// accessors below apply them again for objects that did not go through the API server (tests, fake clients).
const (
	// DefaultPollingInterval is the default pollingInterval, in seconds.
	DefaultPollingInterval int32 = 30
	// DefaultSuccessfulJobsHistoryLimit is the default successfulJobsHistoryLimit.
	DefaultSuccessfulJobsHistoryLimit int32 = 100
	// DefaultFailedJobsHistoryLimit is the default failedJobsHistoryLimit.
	DefaultFailedJobsHistoryLimit int32 = 100
	// DefaultMinReplicaCount is the default minReplicaCount.
	DefaultMinReplicaCount int32 = 0
	// DefaultMaxReplicaCount is the default maxReplicaCount.
	DefaultMaxReplicaCount int32 = 100
	// DefaultRolloutStrategy is the default rollout.strategy. KEDA's default behaves as "immediate"; kubedispatch
	// deliberately never deletes running Jobs unless asked to.
	DefaultRolloutStrategy = RolloutGradual
	// DefaultPropagationPolicy is the default rollout.propagationPolicy.
	DefaultPropagationPolicy = PropagationBackground
	// DefaultScalingStrategy is the default scalingStrategy.strategy.
	DefaultScalingStrategy = StrategyDefault
	// DefaultMultipleScalersCalculation is the default scalingStrategy.multipleScalersCalculation.
	DefaultMultipleScalersCalculation = CalculationMax
)

// PollingIntervalSeconds returns pollingInterval, or DefaultPollingInterval when it is unset.
func (s *ScaledJobSpec) PollingIntervalSeconds() int32 {
	return int32OrDefault(s.PollingInterval, DefaultPollingInterval)
}

// SuccessfulHistoryLimit returns successfulJobsHistoryLimit, or DefaultSuccessfulJobsHistoryLimit when it is unset.
func (s *ScaledJobSpec) SuccessfulHistoryLimit() int32 {
	return int32OrDefault(s.SuccessfulJobsHistoryLimit, DefaultSuccessfulJobsHistoryLimit)
}

// FailedHistoryLimit returns failedJobsHistoryLimit, or DefaultFailedJobsHistoryLimit when it is unset.
func (s *ScaledJobSpec) FailedHistoryLimit() int32 {
	return int32OrDefault(s.FailedJobsHistoryLimit, DefaultFailedJobsHistoryLimit)
}

// MinReplicas returns minReplicaCount, or DefaultMinReplicaCount when it is unset. It does not clamp the value
// to MaxReplicas: Validate rejects a minimum above the maximum.
func (s *ScaledJobSpec) MinReplicas() int32 {
	return int32OrDefault(s.MinReplicaCount, DefaultMinReplicaCount)
}

// MaxReplicas returns maxReplicaCount, or DefaultMaxReplicaCount when it is unset.
func (s *ScaledJobSpec) MaxReplicas() int32 {
	return int32OrDefault(s.MaxReplicaCount, DefaultMaxReplicaCount)
}

// RolloutStrategy returns rollout.strategy, or DefaultRolloutStrategy ("gradual") when it is unset or empty.
func (s *ScaledJobSpec) RolloutStrategy() string {
	if s.Rollout == nil || s.Rollout.Strategy == "" {
		return DefaultRolloutStrategy
	}
	return s.Rollout.Strategy
}

// PropagationPolicy returns the deletion propagation for Jobs deleted by an immediate rollout:
// metav1.DeletePropagationForeground for "foreground", otherwise metav1.DeletePropagationBackground.
func (s *ScaledJobSpec) PropagationPolicy() metav1.DeletionPropagation {
	if s.Rollout != nil && s.Rollout.PropagationPolicy == PropagationForeground {
		return metav1.DeletePropagationForeground
	}
	return metav1.DeletePropagationBackground
}

// ScalingStrategyName returns scalingStrategy.strategy, or DefaultScalingStrategy when it is empty.
func (s *ScaledJobSpec) ScalingStrategyName() string {
	if s.ScalingStrategy.Strategy == "" {
		return DefaultScalingStrategy
	}
	return s.ScalingStrategy.Strategy
}

// ScalersCalculation returns scalingStrategy.multipleScalersCalculation, or DefaultMultipleScalersCalculation
// when it is empty.
func (s *ScaledJobSpec) ScalersCalculation() string {
	if s.ScalingStrategy.MultipleScalersCalculation == "" {
		return DefaultMultipleScalersCalculation
	}
	return s.ScalingStrategy.MultipleScalersCalculation
}

// QueueLengthDeduction returns customScalingQueueLengthDeduction, or 0 when it is unset.
func (s *ScalingStrategy) QueueLengthDeduction() int32 {
	return int32OrDefault(s.CustomScalingQueueLengthDeduction, 0)
}

// RunningJobPercentage parses customScalingRunningJobPercentage. It returns an error when the value is empty, is
// not a decimal number, or lies outside [0, 1].
func (s *ScalingStrategy) RunningJobPercentage() (float64, error) {
	return parsePercentage(s.CustomScalingRunningJobPercentage)
}

func parsePercentage(v string) (float64, error) {
	if v == "" {
		return 0, errors.New("parsing running job percentage: value is empty")
	}
	p, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing running job percentage %q: %w", v, err)
	}
	if math.IsNaN(p) || p < 0 || p > 1 {
		return 0, fmt.Errorf("parsing running job percentage %q: must be between 0 and 1", v)
	}
	return p, nil
}

// EffectiveKind returns kind, or KindTriggerAuthentication when it is unset.
func (r *AuthenticationRef) EffectiveKind() string {
	if r.Kind == "" {
		return KindTriggerAuthentication
	}
	return r.Kind
}

// AuthenticationNames returns the names of the objects of kind (KindTriggerAuthentication or
// KindClusterTriggerAuthentication) that the triggers' authenticationRefs name, sorted and without duplicates; nil
// when there are none. It is the one rule for "which authentications does this ScaledJob use": the dispatcher
// indexes ScaledJobs by it, so an edit of one of them reaches exactly the ScaledJobs that resolve it.
func (s *ScaledJobSpec) AuthenticationNames(kind string) []string {
	var names []string
	for _, t := range s.Triggers {
		if ref := t.AuthenticationRef; ref != nil && ref.Name != "" && ref.EffectiveKind() == kind {
			names = append(names, ref.Name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// IsPaused reports whether obj carries the pause annotation AnnotationPaused with a value that pauses it. As in
// KEDA, "true" and any non-empty value that does not parse as a boolean pause; "false" (or "0", "f", ...) does
// not. Unlike KEDA, a missing or empty annotation does not pause.
func IsPaused(obj metav1.Object) bool {
	v, ok := obj.GetAnnotations()[AnnotationPaused]
	if !ok || v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return true
	}
	return b
}

func int32OrDefault(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}
