package v1alpha1

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// makeScaledJob returns a minimal valid ScaledJob, changed by mods in order.
func makeScaledJob(mods ...func(*ScaledJob)) *ScaledJob {
	sj := &ScaledJob{
		ObjectMeta: metav1.ObjectMeta{Name: "pdf", Namespace: "batch"},
		Spec: ScaledJobSpec{
			JobTargetRef: batchv1.JobSpec{
				Template: corev1.PodTemplateSpec{
					Spec: corev1.PodSpec{
						Containers: []corev1.Container{{Name: "worker", Image: "example.com/pdf:1"}},
					},
				},
			},
			Triggers: []ScaleTrigger{{Type: "aws-sqs-queue", Metadata: map[string]string{"queueURL": "q"}}},
		},
	}
	for _, m := range mods {
		m(sj)
	}
	return sj
}

func withTriggers(ts ...ScaleTrigger) func(*ScaledJob) {
	return func(sj *ScaledJob) { sj.Spec.Triggers = ts }
}

func withStrategy(f func(*ScalingStrategy)) func(*ScaledJob) {
	return func(sj *ScaledJob) { f(&sj.Spec.ScalingStrategy) }
}

func TestValidate(t *testing.T) {
	spec := field.NewPath("spec")
	pod := spec.Child("jobTargetRef", "template", "spec")
	strategy := spec.Child("scalingStrategy")
	triggers := spec.Child("triggers")

	tests := map[string]struct {
		sj   *ScaledJob
		want field.ErrorList
	}{
		"minimal is valid": {
			sj: makeScaledJob(),
		},
		"every field set to a valid value": {
			sj: makeScaledJob(func(sj *ScaledJob) {
				s := &sj.Spec
				s.JobTargetRef.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
				s.JobTargetRef.Template.Spec.Containers = append(s.JobTargetRef.Template.Spec.Containers,
					corev1.Container{Name: "sidecar", Image: "example.com/sidecar:1"})
				s.EnvSourceContainerName = "sidecar"
				s.PollingInterval = ptr.To[int32](1)
				s.SuccessfulJobsHistoryLimit = ptr.To[int32](0)
				s.FailedJobsHistoryLimit = ptr.To[int32](0)
				s.MinReplicaCount = ptr.To[int32](5)
				s.MaxReplicaCount = ptr.To[int32](5)
				s.Rollout = &Rollout{Strategy: RolloutImmediate, PropagationPolicy: PropagationForeground}
				s.ScalingStrategy = ScalingStrategy{
					Strategy:                          StrategyCustom,
					CustomScalingQueueLengthDeduction: ptr.To[int32](-2),
					CustomScalingRunningJobPercentage: "0.5",
					PendingPodConditions:              []string{"Ready", "PodScheduled"},
					MultipleScalersCalculation:        CalculationSum,
				}
				s.Triggers = []ScaleTrigger{
					{Type: "aws-sqs-queue", Name: "orders", UseCachedMetrics: true,
						AuthenticationRef: &AuthenticationRef{Name: "aws", Kind: KindClusterTriggerAuthentication}},
					{Type: "cron", Name: "nightly", AuthenticationRef: &AuthenticationRef{Name: "x"}},
					{Type: "cron"},
					{Type: "cron", Name: ""},
				}
			}),
		},
		"each accepted enum value": {
			sj: makeScaledJob(func(sj *ScaledJob) {
				sj.Spec.Rollout = &Rollout{Strategy: RolloutGradual, PropagationPolicy: PropagationBackground}
				sj.Spec.ScalingStrategy = ScalingStrategy{Strategy: StrategyEager, MultipleScalersCalculation: CalculationAvg}
				sj.Spec.Triggers[0].AuthenticationRef = &AuthenticationRef{Name: "a", Kind: KindTriggerAuthentication}
			}),
		},
		"no containers": {
			sj: makeScaledJob(func(sj *ScaledJob) { sj.Spec.JobTargetRef.Template.Spec.Containers = nil }),
			want: field.ErrorList{
				field.Required(pod.Child("containers"), "at least one container is required"),
			},
		},
		"restartPolicy Always": {
			sj: makeScaledJob(func(sj *ScaledJob) {
				sj.Spec.JobTargetRef.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
			}),
			want: field.ErrorList{
				field.NotSupported(pod.Child("restartPolicy"), corev1.RestartPolicyAlways, []string{"OnFailure", "Never"}),
			},
		},
		"restartPolicy OnFailure": {
			sj: makeScaledJob(func(sj *ScaledJob) {
				sj.Spec.JobTargetRef.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
			}),
		},
		"envSourceContainerName names no container": {
			sj: makeScaledJob(func(sj *ScaledJob) { sj.Spec.EnvSourceContainerName = "app" }),
			want: field.ErrorList{
				field.Invalid(spec.Child("envSourceContainerName"), "app",
					`must name a container of jobTargetRef.template.spec.containers (have "worker")`),
			},
		},
		"pollingInterval 0": {
			sj: makeScaledJob(func(sj *ScaledJob) { sj.Spec.PollingInterval = ptr.To[int32](0) }),
			want: field.ErrorList{
				field.Invalid(spec.Child("pollingInterval"), int32(0), "must be at least 1 (seconds)"),
			},
		},
		"negative history limits": {
			sj: makeScaledJob(func(sj *ScaledJob) {
				sj.Spec.SuccessfulJobsHistoryLimit = ptr.To[int32](-1)
				sj.Spec.FailedJobsHistoryLimit = ptr.To[int32](-2)
			}),
			want: field.ErrorList{
				field.Invalid(spec.Child("successfulJobsHistoryLimit"), int32(-1), "must be 0 or more"),
				field.Invalid(spec.Child("failedJobsHistoryLimit"), int32(-2), "must be 0 or more"),
			},
		},
		"negative minReplicaCount": {
			sj: makeScaledJob(func(sj *ScaledJob) { sj.Spec.MinReplicaCount = ptr.To[int32](-1) }),
			want: field.ErrorList{
				field.Invalid(spec.Child("minReplicaCount"), int32(-1), "must be 0 or more"),
			},
		},
		"minReplicaCount = maxReplicaCount = 2147483647": {
			sj: makeScaledJob(func(sj *ScaledJob) {
				sj.Spec.MinReplicaCount = ptr.To[int32](math.MaxInt32)
				sj.Spec.MaxReplicaCount = ptr.To[int32](math.MaxInt32)
			}),
			want: field.ErrorList{
				field.Invalid(spec.Child("minReplicaCount"), int32(math.MaxInt32), "must be at most 1000000"),
			},
		},
		"maxReplicaCount 2147483647 alone is fine": {
			sj:   makeScaledJob(func(sj *ScaledJob) { sj.Spec.MaxReplicaCount = ptr.To[int32](math.MaxInt32) }),
			want: nil,
		},
		"maxReplicaCount 0": {
			sj: makeScaledJob(func(sj *ScaledJob) { sj.Spec.MaxReplicaCount = ptr.To[int32](0) }),
			want: field.ErrorList{
				field.Invalid(spec.Child("maxReplicaCount"), int32(0), "must be at least 1"),
			},
		},
		"minReplicaCount above maxReplicaCount": {
			sj: makeScaledJob(func(sj *ScaledJob) {
				sj.Spec.MinReplicaCount = ptr.To[int32](3)
				sj.Spec.MaxReplicaCount = ptr.To[int32](2)
			}),
			want: field.ErrorList{
				field.Invalid(spec.Child("minReplicaCount"), int32(3), "must not exceed maxReplicaCount (2)"),
			},
		},
		"minReplicaCount above the default maxReplicaCount": {
			sj: makeScaledJob(func(sj *ScaledJob) { sj.Spec.MinReplicaCount = ptr.To[int32](101) }),
			want: field.ErrorList{
				field.Invalid(spec.Child("minReplicaCount"), int32(101), "must not exceed maxReplicaCount (100)"),
			},
		},
		"minReplicaCount at the default maxReplicaCount": {
			sj: makeScaledJob(func(sj *ScaledJob) { sj.Spec.MinReplicaCount = ptr.To[int32](100) }),
		},
		"unknown rollout values": {
			sj: makeScaledJob(func(sj *ScaledJob) {
				sj.Spec.Rollout = &Rollout{Strategy: "Gradual", PropagationPolicy: "orphan"}
			}),
			want: field.ErrorList{
				field.NotSupported(spec.Child("rollout", "strategy"), "Gradual", []string{"gradual", "immediate"}),
				field.NotSupported(spec.Child("rollout", "propagationPolicy"), "orphan", []string{"foreground", "background"}),
			},
		},
		"unknown strategy and calculation": {
			sj: makeScaledJob(withStrategy(func(s *ScalingStrategy) {
				s.Strategy = "fast"
				s.MultipleScalersCalculation = "median"
			})),
			want: field.ErrorList{
				field.NotSupported(strategy.Child("strategy"), "fast", []string{"default", "custom", "accurate", "eager"}),
				field.NotSupported(strategy.Child("multipleScalersCalculation"), "median", []string{"max", "min", "avg", "sum"}),
			},
		},
		"custom without percentage": {
			sj: makeScaledJob(withStrategy(func(s *ScalingStrategy) {
				s.Strategy = StrategyCustom
				s.CustomScalingQueueLengthDeduction = ptr.To[int32](1)
			})),
			want: field.ErrorList{
				field.Required(strategy.Child("customScalingRunningJobPercentage"),
					`required when strategy is "custom": a decimal number between 0 and 1, such as "0.5"`),
			},
		},
		"custom with percentage 0": {
			sj: makeScaledJob(withStrategy(func(s *ScalingStrategy) {
				s.Strategy = StrategyCustom
				s.CustomScalingRunningJobPercentage = "0"
			})),
		},
		"custom with percentage 1": {
			sj: makeScaledJob(withStrategy(func(s *ScalingStrategy) {
				s.Strategy = StrategyCustom
				s.CustomScalingRunningJobPercentage = "1"
			})),
		},
		"percentage set without custom strategy is checked but allowed": {
			sj: makeScaledJob(withStrategy(func(s *ScalingStrategy) { s.CustomScalingRunningJobPercentage = "0.25" })),
		},
		"unparsable percentage with the default strategy": {
			sj: makeScaledJob(withStrategy(func(s *ScalingStrategy) { s.CustomScalingRunningJobPercentage = "50%" })),
			want: field.ErrorList{
				field.Invalid(strategy.Child("customScalingRunningJobPercentage"), "50%",
					`must be a decimal number between 0 and 1, such as "0.5"`),
			},
		},
		"percentage above 1": {
			sj: makeScaledJob(withStrategy(func(s *ScalingStrategy) {
				s.Strategy = StrategyCustom
				s.CustomScalingRunningJobPercentage = "1.5"
			})),
			want: field.ErrorList{
				field.Invalid(strategy.Child("customScalingRunningJobPercentage"), "1.5",
					`must be a decimal number between 0 and 1, such as "0.5"`),
			},
		},
		"negative percentage": {
			sj: makeScaledJob(withStrategy(func(s *ScalingStrategy) {
				s.Strategy = StrategyCustom
				s.CustomScalingRunningJobPercentage = "-0.1"
			})),
			want: field.ErrorList{
				field.Invalid(strategy.Child("customScalingRunningJobPercentage"), "-0.1",
					`must be a decimal number between 0 and 1, such as "0.5"`),
			},
		},
		"NaN percentage": {
			sj: makeScaledJob(withStrategy(func(s *ScalingStrategy) {
				s.Strategy = StrategyCustom
				s.CustomScalingRunningJobPercentage = "NaN"
			})),
			want: field.ErrorList{
				field.Invalid(strategy.Child("customScalingRunningJobPercentage"), "NaN",
					`must be a decimal number between 0 and 1, such as "0.5"`),
			},
		},
		"duplicate and empty pending pod conditions": {
			sj: makeScaledJob(withStrategy(func(s *ScalingStrategy) {
				s.PendingPodConditions = []string{"Ready", "", "PodScheduled", "Ready"}
			})),
			want: field.ErrorList{
				field.Required(strategy.Child("pendingPodConditions").Index(1), `must name a pod condition type, such as "Ready"`),
				field.Duplicate(strategy.Child("pendingPodConditions").Index(3), "Ready"),
			},
		},
		"no triggers": {
			sj: makeScaledJob(withTriggers()),
			want: field.ErrorList{
				field.Required(triggers, "at least one trigger is required"),
			},
		},
		"too many triggers": {
			sj: makeScaledJob(func(sj *ScaledJob) {
				sj.Spec.Triggers = make([]ScaleTrigger, MaxTriggers+1)
				for i := range sj.Spec.Triggers {
					sj.Spec.Triggers[i] = ScaleTrigger{Type: "cron", Name: fmt.Sprintf("t%d", i)}
				}
			}),
			want: field.ErrorList{
				field.TooMany(triggers, MaxTriggers+1, MaxTriggers),
			},
		},
		"trigger without type": {
			sj: makeScaledJob(withTriggers(ScaleTrigger{Name: "a"})),
			want: field.ErrorList{
				field.Required(triggers.Index(0).Child("type"), `a trigger type is required, such as "aws-sqs-queue"`),
			},
		},
		"duplicate trigger names": {
			sj: makeScaledJob(withTriggers(
				ScaleTrigger{Type: "cron", Name: "a"},
				ScaleTrigger{Type: "cron", Name: "b"},
				ScaleTrigger{Type: "cron", Name: "a"},
				ScaleTrigger{Type: "cron", Name: "a"},
			)),
			want: field.ErrorList{
				field.Duplicate(triggers.Index(2).Child("name"), "a"),
				field.Duplicate(triggers.Index(3).Child("name"), "a"),
			},
		},
		"trigger name too long": {
			sj: makeScaledJob(func(sj *ScaledJob) { sj.Spec.Triggers[0].Name = strings.Repeat("n", MaxTriggerNameLength+1) }),
			want: field.ErrorList{
				field.TooLongCharacters(triggers.Index(0).Child("name"), strings.Repeat("n", MaxTriggerNameLength+1), MaxTriggerNameLength),
			},
		},
		"unnamed triggers are not duplicates": {
			sj: makeScaledJob(withTriggers(ScaleTrigger{Type: "cron"}, ScaleTrigger{Type: "cron"})),
		},
		"metricType set": {
			sj: makeScaledJob(func(sj *ScaledJob) { sj.Spec.Triggers[0].MetricType = "AverageValue" }),
			want: field.ErrorList{
				field.Forbidden(triggers.Index(0).Child("metricType"),
					"must be empty for ScaledJob triggers: the backlog is always divided by the per-Job target"),
			},
		},
		"authenticationRef without name and with an unknown kind": {
			sj: makeScaledJob(func(sj *ScaledJob) {
				sj.Spec.Triggers[0].AuthenticationRef = &AuthenticationRef{Kind: "Secret"}
			}),
			want: field.ErrorList{
				field.Required(triggers.Index(0).Child("authenticationRef", "name"),
					"the name of a TriggerAuthentication or ClusterTriggerAuthentication is required"),
				field.NotSupported(triggers.Index(0).Child("authenticationRef", "kind"), "Secret",
					[]string{"TriggerAuthentication", "ClusterTriggerAuthentication"}),
			},
		},
		"several errors are all reported, in field order": {
			sj: makeScaledJob(func(sj *ScaledJob) {
				sj.Spec.JobTargetRef.Template.Spec.Containers = nil
				sj.Spec.PollingInterval = ptr.To[int32](-5)
				sj.Spec.ScalingStrategy.Strategy = StrategyCustom
				sj.Spec.Triggers = []ScaleTrigger{{Type: "cron", MetricType: "Value"}}
			}),
			want: field.ErrorList{
				field.Required(pod.Child("containers"), "at least one container is required"),
				field.Invalid(spec.Child("pollingInterval"), int32(-5), "must be at least 1 (seconds)"),
				field.Required(strategy.Child("customScalingRunningJobPercentage"),
					`required when strategy is "custom": a decimal number between 0 and 1, such as "0.5"`),
				field.Forbidden(triggers.Index(0).Child("metricType"),
					"must be empty for ScaledJob triggers: the backlog is always divided by the per-Job target"),
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

// TestValidateMessages pins the text users see, since field.Error formats path, value and detail together.
func TestValidateMessages(t *testing.T) {
	tests := map[string]struct {
		sj   *ScaledJob
		want string
	}{
		"min above max": {
			sj: makeScaledJob(func(sj *ScaledJob) {
				sj.Spec.MinReplicaCount = ptr.To[int32](3)
				sj.Spec.MaxReplicaCount = ptr.To[int32](2)
			}),
			want: "spec.minReplicaCount: Invalid value: 3: must not exceed maxReplicaCount (2)",
		},
		"custom without percentage": {
			sj: makeScaledJob(withStrategy(func(s *ScalingStrategy) { s.Strategy = StrategyCustom })),
			want: `spec.scalingStrategy.customScalingRunningJobPercentage: Required value: ` +
				`required when strategy is "custom": a decimal number between 0 and 1, such as "0.5"`,
		},
		"duplicate trigger name": {
			sj:   makeScaledJob(withTriggers(ScaleTrigger{Type: "cron", Name: "a"}, ScaleTrigger{Type: "cron", Name: "a"})),
			want: `spec.triggers[1].name: Duplicate value: "a"`,
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

func TestValidateDoesNotMutate(t *testing.T) {
	sj := makeScaledJob(withStrategy(func(s *ScalingStrategy) { s.Strategy = "bogus" }))
	before := sj.DeepCopy()
	_ = sj.Validate()
	if diff := cmp.Diff(before, sj); diff != "" {
		t.Errorf("Validate() mutated the ScaledJob (-before +after):\n%s", diff)
	}
}
