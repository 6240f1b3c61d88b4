package v1alpha1

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// specValues gathers every defaulting accessor so that one table row checks them all.
type specValues struct {
	Polling, Successful, Failed, Min, Max int32
	Rollout, Strategy, Calculation        string
	Propagation                           metav1.DeletionPropagation
	Deduction                             int32
}

func valuesOf(s *ScaledJobSpec) specValues {
	return specValues{
		Polling:     s.PollingIntervalSeconds(),
		Successful:  s.SuccessfulHistoryLimit(),
		Failed:      s.FailedHistoryLimit(),
		Min:         s.MinReplicas(),
		Max:         s.MaxReplicas(),
		Rollout:     s.RolloutStrategy(),
		Strategy:    s.ScalingStrategyName(),
		Calculation: s.ScalersCalculation(),
		Propagation: s.PropagationPolicy(),
		Deduction:   s.ScalingStrategy.QueueLengthDeduction(),
	}
}

func TestSpecAccessors(t *testing.T) {
	tests := map[string]struct {
		spec ScaledJobSpec
		want specValues
	}{
		"unset fields take the defaults": {
			spec: ScaledJobSpec{},
			want: specValues{
				Polling: 30, Successful: 100, Failed: 100, Min: 0, Max: 100,
				Rollout: "gradual", Strategy: "default", Calculation: "max",
				Propagation: metav1.DeletePropagationBackground, Deduction: 0,
			},
		},
		"empty rollout takes the defaults": {
			spec: ScaledJobSpec{Rollout: &Rollout{}},
			want: specValues{
				Polling: 30, Successful: 100, Failed: 100, Min: 0, Max: 100,
				Rollout: "gradual", Strategy: "default", Calculation: "max",
				Propagation: metav1.DeletePropagationBackground,
			},
		},
		"set fields are returned, zeros included": {
			spec: ScaledJobSpec{
				PollingInterval:            ptr.To[int32](5),
				SuccessfulJobsHistoryLimit: ptr.To[int32](0),
				FailedJobsHistoryLimit:     ptr.To[int32](0),
				MinReplicaCount:            ptr.To[int32](2),
				MaxReplicaCount:            ptr.To[int32](7),
				Rollout:                    &Rollout{Strategy: RolloutImmediate, PropagationPolicy: PropagationForeground},
				ScalingStrategy: ScalingStrategy{
					Strategy:                          StrategyAccurate,
					MultipleScalersCalculation:        CalculationSum,
					CustomScalingQueueLengthDeduction: ptr.To[int32](-2),
				},
			},
			want: specValues{
				Polling: 5, Successful: 0, Failed: 0, Min: 2, Max: 7,
				Rollout: "immediate", Strategy: "accurate", Calculation: "sum",
				Propagation: metav1.DeletePropagationForeground, Deduction: -2,
			},
		},
		"explicit background propagation": {
			spec: ScaledJobSpec{Rollout: &Rollout{Strategy: RolloutImmediate, PropagationPolicy: PropagationBackground}},
			want: specValues{
				Polling: 30, Successful: 100, Failed: 100, Min: 0, Max: 100,
				Rollout: "immediate", Strategy: "default", Calculation: "max",
				Propagation: metav1.DeletePropagationBackground,
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, valuesOf(&tc.spec)); diff != "" {
				t.Errorf("accessors mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunningJobPercentage(t *testing.T) {
	tests := map[string]struct {
		value   string
		want    float64
		wantErr bool
	}{
		"half":           {value: "0.5", want: 0.5},
		"zero":           {value: "0", want: 0},
		"one":            {value: "1", want: 1},
		"leading dot":    {value: ".25", want: 0.25},
		"empty":          {value: "", wantErr: true},
		"percent sign":   {value: "50%", wantErr: true},
		"above one":      {value: "1.01", wantErr: true},
		"negative":       {value: "-0.5", wantErr: true},
		"not a number":   {value: "NaN", wantErr: true},
		"infinity":       {value: "+Inf", wantErr: true},
		"trailing space": {value: "0.5 ", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := ScalingStrategy{CustomScalingRunningJobPercentage: tc.value}
			got, err := s.RunningJobPercentage()
			if gotErr := err != nil; gotErr != tc.wantErr {
				t.Fatalf("RunningJobPercentage() error = %v, want error: %t", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("RunningJobPercentage() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestIsPaused(t *testing.T) {
	tests := map[string]struct {
		annotations map[string]string
		want        bool
	}{
		"no annotations":          {annotations: nil, want: false},
		"other annotation":        {annotations: map[string]string{"autoscaling.keda.sh/paused": "true"}, want: false},
		"true":                    {annotations: map[string]string{AnnotationPaused: "true"}, want: true},
		"TRUE":                    {annotations: map[string]string{AnnotationPaused: "TRUE"}, want: true},
		"1":                       {annotations: map[string]string{AnnotationPaused: "1"}, want: true},
		"false":                   {annotations: map[string]string{AnnotationPaused: "false"}, want: false},
		"0":                       {annotations: map[string]string{AnnotationPaused: "0"}, want: false},
		"empty value":             {annotations: map[string]string{AnnotationPaused: ""}, want: false},
		"value that is not bool":  {annotations: map[string]string{AnnotationPaused: "yes"}, want: true},
		"reason instead of bool":  {annotations: map[string]string{AnnotationPaused: "maintenance window"}, want: true},
		"false with extra spaces": {annotations: map[string]string{AnnotationPaused: " false"}, want: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sj := makeScaledJob(func(sj *ScaledJob) { sj.Annotations = tc.annotations })
			if got := IsPaused(sj); got != tc.want {
				t.Errorf("IsPaused(%v) = %t, want %t", tc.annotations, got, tc.want)
			}
		})
	}
}

func TestAuthenticationNames(t *testing.T) {
	ta := func(name string) *AuthenticationRef { return &AuthenticationRef{Name: name} }
	cta := func(name string) *AuthenticationRef {
		return &AuthenticationRef{Name: name, Kind: KindClusterTriggerAuthentication}
	}
	type names struct{ TriggerAuthentications, ClusterTriggerAuthentications []string }
	tests := map[string]struct {
		refs []*AuthenticationRef
		want names
	}{
		"no trigger has an authenticationRef": {refs: []*AuthenticationRef{nil, nil}},
		"an unset kind is a TriggerAuthentication": {
			refs: []*AuthenticationRef{ta("keys")},
			want: names{TriggerAuthentications: []string{"keys"}},
		},
		"an explicit TriggerAuthentication kind": {
			refs: []*AuthenticationRef{{Name: "keys", Kind: KindTriggerAuthentication}},
			want: names{TriggerAuthentications: []string{"keys"}},
		},
		"both kinds, sorted, each name once": {
			refs: []*AuthenticationRef{cta("shared"), ta("keys"), nil, ta("b-keys"), cta("shared"), ta("keys")},
			want: names{TriggerAuthentications: []string{"b-keys", "keys"}, ClusterTriggerAuthentications: []string{"shared"}},
		},
		"the same name under both kinds is two references": {
			refs: []*AuthenticationRef{ta("creds"), cta("creds")},
			want: names{TriggerAuthentications: []string{"creds"}, ClusterTriggerAuthentications: []string{"creds"}},
		},
		"an empty name or an unknown kind refers to nothing": {
			refs: []*AuthenticationRef{ta(""), {Name: "x", Kind: "Secret"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var spec ScaledJobSpec
			for _, r := range tc.refs {
				spec.Triggers = append(spec.Triggers, ScaleTrigger{Type: "aws-sqs-queue", AuthenticationRef: r})
			}
			got := names{
				TriggerAuthentications:        spec.AuthenticationNames(KindTriggerAuthentication),
				ClusterTriggerAuthentications: spec.AuthenticationNames(KindClusterTriggerAuthentication),
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("AuthenticationNames (-want +got):\n%s", diff)
			}
		})
	}
}
