package dispatch

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"k8s.io/utils/ptr"
)

// active and inactive build trigger readings.
func active(name string, backlog, target float64) TriggerReading {
	return TriggerReading{Name: name, Backlog: backlog, Target: target, Active: true}
}

func inactive(name string, backlog, target float64) TriggerReading {
	return TriggerReading{Name: name, Backlog: backlog, Target: target}
}

// kedaScalers are the four scalers of KEDA's TestGetScaledJobState (§2.8 C): Q/T/active.
func kedaScalers() []TriggerReading {
	return []TriggerReading{
		active("s0", 20, 1),
		active("s1", 10, 2),
		active("s2", 5, 3),
		inactive("s3", 7, 4),
	}
}

// ignoreReason compares decisions without their reason sentence; TestDecideReason checks reasons.
var ignoreReason = cmpopts.IgnoreFields(Decision{}, "Reason")

// Vectors §2.8 A (scaledjob_types_test.go).
func TestNormalise(t *testing.T) {
	type want struct{ MinE, MaxE int64 }
	cases := map[string]struct {
		min, max *int32
		want     want
	}{
		"A/max 10 min 0":     {min: ptr.To[int32](0), max: ptr.To[int32](10), want: want{MinE: 0, MaxE: 10}},
		"A/max 10 min nil":   {max: ptr.To[int32](10), want: want{MinE: 0, MaxE: 10}},
		"A/max 10 min 1":     {min: ptr.To[int32](1), max: ptr.To[int32](10), want: want{MinE: 1, MaxE: 9}},
		"A/max nil min 1":    {min: ptr.To[int32](1), want: want{MinE: 1, MaxE: 100}},
		"A/max nil min nil":  {want: want{MinE: 0, MaxE: 100}},
		"A/max 1 min 10":     {min: ptr.To[int32](10), max: ptr.To[int32](1), want: want{MinE: 1, MaxE: 1}},
		"min equals max":     {min: ptr.To[int32](5), max: ptr.To[int32](5), want: want{MinE: 5, MaxE: 0}},
		"max nil min 150":    {min: ptr.To[int32](150), want: want{MinE: 150, MaxE: 100}},
		"int32 extremes fit": {min: ptr.To[int32](math.MinInt32), max: ptr.To[int32](math.MaxInt32), want: want{MinE: math.MinInt32, MaxE: math.MaxInt32 - math.MinInt32}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			minE, maxE := Normalise(tc.min, tc.max)
			if diff := cmp.Diff(tc.want, want{MinE: minE, MaxE: maxE}); diff != "" {
				t.Errorf("Normalise() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// Vectors §2.8 B (getTargetAverageValue).
func TestMeanTarget(t *testing.T) {
	cases := map[string]struct {
		targets []float64
		want    float64
	}{
		"B/none":    {targets: nil, want: 0},
		"B/[1 1]":   {targets: []float64{1, 1}, want: 1},
		"B/[5 5 3]": {targets: []float64{5, 5, 3}, want: 4.333333333333333},
		"B/[5 5 4]": {targets: []float64{5, 5, 4}, want: 4.666666666666667},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, MeanTarget(tc.targets)); diff != "" {
				t.Errorf("MeanTarget() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// Vectors §2.8 C (TestGetScaledJobState, ...IfQueueEmptyButMinReplicaCountGreaterZero), with min and max
// normalised first as KEDA does, plus the §2.8 B case of a multi-metric trigger whose T is a mean.
func TestCombine(t *testing.T) {
	type want struct {
		Active            bool
		ScaleTo, MaxScale int64
	}
	cases := map[string]struct {
		min, max *int32
		calc     Calculation
		triggers []TriggerReading
		want     want
	}{
		"C/max default with min 1": {
			min: ptr.To[int32](1), max: ptr.To[int32](100), calc: "",
			triggers: []TriggerReading{active("s0", 20, 2)},
			want:     want{Active: true, ScaleTo: 20, MaxScale: 10},
		},
		"C/max": {
			min: ptr.To[int32](0), max: ptr.To[int32](100), calc: CalculationMax, triggers: kedaScalers(),
			want: want{Active: true, ScaleTo: 20, MaxScale: 20},
		},
		"C/min": {
			min: ptr.To[int32](0), max: ptr.To[int32](100), calc: CalculationMin, triggers: kedaScalers(),
			want: want{Active: true, ScaleTo: 5, MaxScale: 2},
		},
		"C/avg": {
			min: ptr.To[int32](0), max: ptr.To[int32](100), calc: CalculationAvg, triggers: kedaScalers(),
			want: want{Active: true, ScaleTo: 12, MaxScale: 9},
		},
		"C/sum": {
			min: ptr.To[int32](0), max: ptr.To[int32](100), calc: CalculationSum, triggers: kedaScalers(),
			want: want{Active: true, ScaleTo: 35, MaxScale: 27},
		},
		"C/sum capped by max 25": {
			min: ptr.To[int32](0), max: ptr.To[int32](25), calc: CalculationSum, triggers: kedaScalers(),
			want: want{Active: true, ScaleTo: 35, MaxScale: 25},
		},
		"C/empty queue but min 1 is active": {
			min: ptr.To[int32](1), max: ptr.To[int32](100), calc: "",
			triggers: []TriggerReading{active("s0", 0, 1)},
			want:     want{Active: true, ScaleTo: 0, MaxScale: 0},
		},
		"B/multi-metric trigger uses the mean target 13/3": {
			max: ptr.To[int32](100), triggers: []TriggerReading{active("s0", 13, MeanTarget([]float64{5, 5, 3}))},
			want: want{Active: true, ScaleTo: 13, MaxScale: 3},
		},
		"max picks by backlog, not by Job count": {
			max: ptr.To[int32](100), triggers: []TriggerReading{active("big", 10, 10), active("small", 9, 1)},
			want: want{Active: true, ScaleTo: 10, MaxScale: 1},
		},
		"max with only zero backlogs is inactive": {
			max: ptr.To[int32](100), triggers: []TriggerReading{active("a", 0, 1), active("b", 0, 1)},
			want: want{Active: false},
		},
		"min replaces a zero backlog with the next active one": {
			max: ptr.To[int32](100), calc: CalculationMin, triggers: []TriggerReading{active("a", 0, 1), active("b", 4, 1)},
			want: want{Active: true, ScaleTo: 4, MaxScale: 4},
		},
		"min with an active zero backlog alone is active": {
			max: ptr.To[int32](100), calc: CalculationMin, triggers: []TriggerReading{active("a", 0, 1)},
			want: want{Active: true},
		},
		"inactive trigger with backlog contributes nothing": {
			max: ptr.To[int32](100), calc: CalculationSum, triggers: []TriggerReading{inactive("sqs", 3, 1)},
			want: want{Active: false},
		},
		"target 0 yields 0 Jobs but keeps the backlog": {
			max: ptr.To[int32](100), triggers: []TriggerReading{active("t0", 7, 0)},
			want: want{Active: true, ScaleTo: 7, MaxScale: 0},
		},
		"target below 1 caps at max": {
			max: ptr.To[int32](10), triggers: []TriggerReading{active("frac", 3, 0.1)},
			want: want{Active: true, ScaleTo: 3, MaxScale: 10},
		},
		"unknown calculation behaves as max": {
			max: ptr.To[int32](100), calc: "median", triggers: kedaScalers(),
			want: want{Active: true, ScaleTo: 20, MaxScale: 20},
		},
		"no triggers": {
			max:  ptr.To[int32](100),
			want: want{Active: false},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			minE, maxE := Normalise(tc.min, tc.max)
			a, scaleTo, maxScale := Combine(tc.triggers, tc.calc, minE, maxE)
			if diff := cmp.Diff(tc.want, want{Active: a, ScaleTo: scaleTo, MaxScale: maxScale}); diff != "" {
				t.Errorf("Combine() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// Vectors §2.8 D (GetEffectiveMaxScale). For rows where KEDA asserts only E, wantScaleTo is the scaleTo
// passed in, which every strategy but eager returns unchanged.
func TestEffectiveMax(t *testing.T) {
	defaultS := StrategySettings{Strategy: StrategyDefault}
	custom := func(d *int32, p string) StrategySettings {
		return StrategySettings{Strategy: StrategyCustom, CustomDeduction: d, CustomRunningPercentage: p}
	}
	accurate := StrategySettings{Strategy: StrategyAccurate}
	eager := StrategySettings{Strategy: StrategyEager}
	in := func(maxScale, running, pending, maxRC, scaleTo int64) StrategyInputs {
		return StrategyInputs{MaxScale: maxScale, Running: running, Pending: pending, MaxReplicaCount: maxRC, ScaleTo: scaleTo}
	}
	type want struct{ E, ScaleTo int64 }
	cases := map[string]struct {
		s    StrategySettings
		in   StrategyInputs
		want want
	}{
		"D/Default (3,2,0,5,1)":                               {s: defaultS, in: in(3, 2, 0, 5, 1), want: want{E: 1, ScaleTo: 1}},
		"D/Default (2,0,0,5,1)":                               {s: defaultS, in: in(2, 0, 0, 5, 1), want: want{E: 2, ScaleTo: 1}},
		"D/Custom D1 p0.5 (3,2,0,5,1)":                        {s: custom(ptr.To[int32](1), "0.5"), in: in(3, 2, 0, 5, 1), want: want{E: 1, ScaleTo: 1}},
		"D/Custom D1 p0.5 (10,0,0,10,1)":                      {s: custom(ptr.To[int32](1), "0.5"), in: in(10, 0, 0, 10, 1), want: want{E: 9, ScaleTo: 1}},
		"D/Custom Dnil p'' falls back to default (3,2,0,5,1)": {s: custom(nil, ""), in: in(3, 2, 0, 5, 1), want: want{E: 1, ScaleTo: 1}},
		"D/Custom Dnil p'' falls back to default (2,0,0,5,1)": {s: custom(nil, ""), in: in(2, 0, 0, 5, 1), want: want{E: 2, ScaleTo: 1}},
		"D/Custom D2 p0 (3,2,0,5,1)":                          {s: custom(ptr.To[int32](2), "0"), in: in(3, 2, 0, 5, 1), want: want{E: 1, ScaleTo: 1}},
		"D/Custom D-2 p0 (3,2,0,4,1) capped to maxRC":         {s: custom(ptr.To[int32](-2), "0"), in: in(3, 2, 0, 4, 1), want: want{E: 4, ScaleTo: 1}},
		"D/CustomNilDeduction p0.5 (10,2,0,100,1)":            {s: custom(nil, "0.5"), in: in(10, 2, 0, 100, 1), want: want{E: 9, ScaleTo: 1}},
		"D/CustomNilDeduction p0.5 (10,0,0,100,1)":            {s: custom(nil, "0.5"), in: in(10, 0, 0, 100, 1), want: want{E: 10, ScaleTo: 1}},
		"D/Accurate (3,2,0,5,1)":                              {s: accurate, in: in(3, 2, 0, 5, 1), want: want{E: 3, ScaleTo: 1}},
		"D/Accurate (5,2,0,5,1)":                              {s: accurate, in: in(5, 2, 0, 5, 1), want: want{E: 3, ScaleTo: 1}},
		"D/Accurate (3,4,2,10,1)":                             {s: accurate, in: in(3, 4, 2, 10, 1), want: want{E: 1, ScaleTo: 1}},
		"D/Accurate (5,4,2,5,1)":                              {s: accurate, in: in(5, 4, 2, 5, 1), want: want{E: 1, ScaleTo: 1}},
		"D/Accurate (3,3,3,5,1)":                              {s: accurate, in: in(3, 3, 3, 5, 1), want: want{E: 0, ScaleTo: 1}},
		"D/Accurate (15,15,15,20,1)":                          {s: accurate, in: in(15, 15, 15, 20, 1), want: want{E: 0, ScaleTo: 1}},
		"D/Accurate (10,10,10,15,1)":                          {s: accurate, in: in(10, 10, 10, 15, 1), want: want{E: 0, ScaleTo: 1}},
		"D/Accurate (20,15,10,20,1)":                          {s: accurate, in: in(20, 15, 10, 20, 1), want: want{E: 5, ScaleTo: 1}},
		"D/Eager (4,3,0,10,1)":                                {s: eager, in: in(4, 3, 0, 10, 1), want: want{E: 4, ScaleTo: 10}},
		"D/Eager (4,0,3,10,1)":                                {s: eager, in: in(4, 0, 3, 10, 1), want: want{E: 4, ScaleTo: 10}},
		"D/Eager (4,7,0,10,1)":                                {s: eager, in: in(4, 7, 0, 10, 1), want: want{E: 3, ScaleTo: 10}},
		"D/Eager (4,1,6,10,1)":                                {s: eager, in: in(4, 1, 6, 10, 1), want: want{E: 3, ScaleTo: 10}},
		"D/Eager (15,0,0,10,1)":                               {s: eager, in: in(15, 0, 0, 10, 1), want: want{E: 10, ScaleTo: 10}},
		"D/factory CustomNilDeduction p0.5 (10,2,0,100,1)": {
			s: StrategySettings{Strategy: StrategyCustom, CustomRunningPercentage: "0.5"}, in: in(10, 2, 0, 100, 1),
			want: want{E: 9, ScaleTo: 1},
		},
		"empty strategy is default (3,2,0,5,1)": {s: StrategySettings{}, in: in(3, 2, 0, 5, 1), want: want{E: 1, ScaleTo: 1}},
		"default may go negative (2,5,0,5,1)":   {s: defaultS, in: in(2, 5, 0, 5, 1), want: want{E: -3, ScaleTo: 1}},
		"custom truncates toward zero (10,3,0,100,1) p0.5": {
			s: custom(nil, "0.5"), in: in(10, 3, 0, 100, 1), want: want{E: 9, ScaleTo: 1},
		},
		"custom negative percentage truncates toward zero (10,3,0,100,1) p-0.5": {
			s: custom(nil, "-0.5"), in: in(10, 3, 0, 100, 1), want: want{E: 11, ScaleTo: 1},
		},
		"custom NaN percentage falls back to default (3,2,0,5,1)": {s: custom(ptr.To[int32](1), "NaN"), in: in(3, 2, 0, 5, 1), want: want{E: 1, ScaleTo: 1}},
		"default saturates instead of wrapping": {
			s: defaultS, in: in(math.MinInt64, 1, 0, 5, 1), want: want{E: math.MinInt64, ScaleTo: 1},
		},
		"custom huge percentage saturates": {
			s: custom(nil, "1e300"), in: in(3, 2, 0, 5, 1), want: want{E: math.MinInt64 + 4, ScaleTo: 1},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e, scaleTo := EffectiveMax(tc.s, tc.in)
			if diff := cmp.Diff(tc.want, want{E: e, ScaleTo: scaleTo}); diff != "" {
				t.Errorf("EffectiveMax() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// Factory rows of §2.8 D (TestNewNewScalingStrategy) plus the fallback rows.
func TestResolveStrategy(t *testing.T) {
	cases := map[string]struct {
		s    StrategySettings
		want Strategy
	}{
		"D/factory custom D10 p0":                {s: StrategySettings{Strategy: StrategyCustom, CustomDeduction: ptr.To[int32](10), CustomRunningPercentage: "0"}, want: StrategyCustom},
		"D/factory accurate":                     {s: StrategySettings{Strategy: StrategyAccurate}, want: StrategyAccurate},
		"D/factory empty strategy":               {s: StrategySettings{}, want: StrategyDefault},
		"D/factory default":                      {s: StrategySettings{Strategy: StrategyDefault}, want: StrategyDefault},
		"D/Custom D1 p'' is default":             {s: StrategySettings{Strategy: StrategyCustom, CustomDeduction: ptr.To[int32](1)}, want: StrategyDefault},
		"D/factory CustomNilDeduction p0.5":      {s: StrategySettings{Strategy: StrategyCustom, CustomRunningPercentage: "0.5"}, want: StrategyCustom},
		"eager":                                  {s: StrategySettings{Strategy: StrategyEager}, want: StrategyEager},
		"custom with unparsable percentage":      {s: StrategySettings{Strategy: StrategyCustom, CustomRunningPercentage: "50%"}, want: StrategyDefault},
		"custom with Inf percentage":             {s: StrategySettings{Strategy: StrategyCustom, CustomRunningPercentage: "+Inf"}, want: StrategyDefault},
		"custom with out-of-range percentage":    {s: StrategySettings{Strategy: StrategyCustom, CustomRunningPercentage: "1e400"}, want: StrategyDefault},
		"unknown strategy is default":            {s: StrategySettings{Strategy: "greedy"}, want: StrategyDefault},
		"percentage ignored by other strategies": {s: StrategySettings{Strategy: StrategyAccurate, CustomRunningPercentage: "x"}, want: StrategyAccurate},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, ResolveStrategy(tc.s)); diff != "" {
				t.Errorf("ResolveStrategy() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// Vectors §2.8 E (getScalingDecision; the ScaledJob has max 100 and the default strategy).
func TestScalingDecision(t *testing.T) {
	type want struct{ E, ScaleTo int64 }
	cases := map[string]struct {
		min                        int32
		running, scaleTo, maxScale int64
		pending                    int64
		want                       want
	}{
		"E/min 2 R 0 fills baseline":    {min: 2, running: 0, scaleTo: 0, maxScale: 0, want: want{E: 2, ScaleTo: 2}},
		"E/min 2 R 1 fills baseline":    {min: 2, running: 1, scaleTo: 0, maxScale: 0, want: want{E: 1, ScaleTo: 1}},
		"E/min 1 R 1 runs the strategy": {min: 1, running: 1, scaleTo: 2, maxScale: 2, want: want{E: 2, ScaleTo: 2}},
		"negative E is floored":         {min: 0, running: 5, scaleTo: 2, maxScale: 2, want: want{E: 0, ScaleTo: 2}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			minE, maxE := Normalise(ptr.To(tc.min), ptr.To[int32](100))
			e, scaleTo := scalingDecision(StrategySettings{}, minE, maxE, tc.running, tc.pending, tc.scaleTo, tc.maxScale)
			if diff := cmp.Diff(tc.want, want{E: e, ScaleTo: scaleTo}); diff != "" {
				t.Errorf("scalingDecision() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// Decide end to end: §2.8 E and I, §2.9 D1-D11, and the safety clamp. Reasons are checked in
// TestDecideReason.
func TestDecide(t *testing.T) {
	sqs := func(q, target float64) []TriggerReading { return []TriggerReading{active("sqs", q, target)} }
	cases := map[string]struct {
		in   Inputs
		want Decision
	}{
		// §2.8 E through Decide: the "→ scaleTo" column is what gets created.
		"E/min 2 R 0 empty queue": {
			in:   Inputs{Triggers: sqs(0, 1), Running: 0, MinReplicaCount: ptr.To[int32](2), MaxReplicaCount: ptr.To[int32](100)},
			want: Decision{Create: 2, Active: true, ScaleTo: 0, MaxScale: 0, EffectiveMax: 2},
		},
		"E/min 2 R 1 empty queue": {
			in:   Inputs{Triggers: sqs(0, 1), Running: 1, MinReplicaCount: ptr.To[int32](2), MaxReplicaCount: ptr.To[int32](100)},
			want: Decision{Create: 1, Active: true, ScaleTo: 0, MaxScale: 0, EffectiveMax: 1},
		},
		"E/min 1 R 1 backlog 2": {
			in:   Inputs{Triggers: sqs(2, 1), Running: 1, MinReplicaCount: ptr.To[int32](1), MaxReplicaCount: ptr.To[int32](100)},
			want: Decision{Create: 2, Active: true, ScaleTo: 2, MaxScale: 2, EffectiveMax: 2},
		},
		// §2.8 I: the docs table (default strategy, min 0).
		"I/Q10 max3 T1 R0": {
			in:   Inputs{Triggers: sqs(10, 1), Running: 0, MaxReplicaCount: ptr.To[int32](3)},
			want: Decision{Create: 3, Active: true, ScaleTo: 10, MaxScale: 3, EffectiveMax: 3},
		},
		"I/Q10 max3 T2 R0": {
			in:   Inputs{Triggers: sqs(10, 2), Running: 0, MaxReplicaCount: ptr.To[int32](3)},
			want: Decision{Create: 3, Active: true, ScaleTo: 10, MaxScale: 3, EffectiveMax: 3},
		},
		"I/Q10 max3 T1 R1": {
			in:   Inputs{Triggers: sqs(10, 1), Running: 1, MaxReplicaCount: ptr.To[int32](3)},
			want: Decision{Create: 2, Active: true, ScaleTo: 10, MaxScale: 3, EffectiveMax: 2},
		},
		"I/Q10 max100 T1 R0": {
			in:   Inputs{Triggers: sqs(10, 1), Running: 0, MaxReplicaCount: ptr.To[int32](100)},
			want: Decision{Create: 10, Active: true, ScaleTo: 10, MaxScale: 10, EffectiveMax: 10},
		},
		"I/Q4 max3 T5 R0": {
			in:   Inputs{Triggers: sqs(4, 5), Running: 0, MaxReplicaCount: ptr.To[int32](3)},
			want: Decision{Create: 1, Active: true, ScaleTo: 4, MaxScale: 1, EffectiveMax: 1},
		},
		// §2.9 derived vectors.
		"D1 min2 max10 Q3 R0 fills the baseline only": {
			in:   Inputs{Triggers: sqs(3, 1), Running: 0, MinReplicaCount: ptr.To[int32](2), MaxReplicaCount: ptr.To[int32](10)},
			want: Decision{Create: 2, Active: true, ScaleTo: 3, MaxScale: 3, EffectiveMax: 2},
		},
		"D2 min2 max10 Q3 R2 next poll": {
			in:   Inputs{Triggers: sqs(3, 1), Running: 2, MinReplicaCount: ptr.To[int32](2), MaxReplicaCount: ptr.To[int32](10)},
			want: Decision{Create: 3, Active: true, ScaleTo: 3, MaxScale: 3, EffectiveMax: 3},
		},
		"D3 max10 default Q6 R3": {
			in:   Inputs{Triggers: sqs(6, 1), Running: 3, MaxReplicaCount: ptr.To[int32](10)},
			want: Decision{Create: 3, Active: true, ScaleTo: 6, MaxScale: 6, EffectiveMax: 3},
		},
		"D4 max10 eager Q6 R3 P0 (total 9)": {
			in: Inputs{Triggers: sqs(6, 1), Running: 3, MaxReplicaCount: ptr.To[int32](10),
				Settings: StrategySettings{Strategy: StrategyEager}},
			want: Decision{Create: 6, Active: true, ScaleTo: 6, MaxScale: 6, EffectiveMax: 6},
		},
		"D5 max10 eager Q6 R9": {
			in: Inputs{Triggers: sqs(6, 1), Running: 9, MaxReplicaCount: ptr.To[int32](10),
				Settings: StrategySettings{Strategy: StrategyEager}},
			want: Decision{Create: 1, Active: true, ScaleTo: 6, MaxScale: 6, EffectiveMax: 1},
		},
		"D6 max10 accurate Q5 R5 P5": {
			in: Inputs{Triggers: sqs(5, 1), Running: 5, Pending: 5, MaxReplicaCount: ptr.To[int32](10),
				Settings: StrategySettings{Strategy: StrategyAccurate}},
			want: Decision{Create: 0, Active: true, ScaleTo: 5, MaxScale: 5, EffectiveMax: 0},
		},
		"D7 max100 custom D1 p0.5 Q10 R4": {
			in: Inputs{Triggers: sqs(10, 1), Running: 4, MaxReplicaCount: ptr.To[int32](100),
				Settings: StrategySettings{Strategy: StrategyCustom, CustomDeduction: ptr.To[int32](1), CustomRunningPercentage: "0.5"}},
			want: Decision{Create: 7, Active: true, ScaleTo: 10, MaxScale: 10, EffectiveMax: 7},
		},
		// Normalise(10, 1) = (1, 1), so the total cap is 2 and R=1 leaves room for 1: same as KEDA,
		// total 2 > spec max 1 (the min > max quirk is kept).
		"D8 min10 max1 Q5 R1 creates 1 like KEDA": {
			in:   Inputs{Triggers: sqs(5, 1), Running: 1, MinReplicaCount: ptr.To[int32](10), MaxReplicaCount: ptr.To[int32](1)},
			want: Decision{Create: 1, Active: true, ScaleTo: 5, MaxScale: 1, EffectiveMax: 1},
		},
		"D9 SQS queueLength 5": {
			in:   Inputs{Triggers: sqs(10, 5), Running: 0, MinReplicaCount: ptr.To[int32](0), MaxReplicaCount: ptr.To[int32](100)},
			want: Decision{Create: 2, Active: true, ScaleTo: 10, MaxScale: 2, EffectiveMax: 2},
		},
		"D10 activation 5 with Q3 is inactive": {
			in:   Inputs{Triggers: []TriggerReading{inactive("sqs", 3, 1)}, MaxReplicaCount: ptr.To[int32](100)},
			want: Decision{Create: 0, Active: false, ScaleTo: 0, MaxScale: 0, EffectiveMax: 0},
		},
		"D11 cron desiredReplicas 3 in window R0": {
			in:   Inputs{Triggers: []TriggerReading{active("cron", 3, 1)}, Running: 0, MaxReplicaCount: ptr.To[int32](100)},
			want: Decision{Create: 3, Active: true, ScaleTo: 3, MaxScale: 3, EffectiveMax: 3},
		},
		// Beyond the vectors.
		"target below 1 is limited by the raw backlog": {
			in:   Inputs{Triggers: sqs(3, 0.1), MaxReplicaCount: ptr.To[int32](10)},
			want: Decision{Create: 3, Active: true, ScaleTo: 3, MaxScale: 10, EffectiveMax: 10},
		},
		"eager creates up to maxScale on every poll": {
			in: Inputs{Triggers: sqs(2, 1), Running: 2, MaxReplicaCount: ptr.To[int32](10),
				Settings: StrategySettings{Strategy: StrategyEager}},
			want: Decision{Create: 2, Active: true, ScaleTo: 2, MaxScale: 2, EffectiveMax: 2},
		},
		"max unset and min 1 keeps KEDA's 101 total": {
			in:   Inputs{Triggers: sqs(200, 1), Running: 1, MinReplicaCount: ptr.To[int32](1)},
			want: Decision{Create: 100, Active: true, ScaleTo: 200, MaxScale: 100, EffectiveMax: 100},
		},
		"safety clamp: custom negative deduction would exceed max": {
			// KEDA: E = min(5 - (-3) - 0, 10) = 8, creates 8 with 6 running: 14 > 10. We create 4.
			in: Inputs{Triggers: sqs(5, 1), Running: 6, MaxReplicaCount: ptr.To[int32](10),
				Settings: StrategySettings{Strategy: StrategyCustom, CustomDeduction: ptr.To[int32](-3), CustomRunningPercentage: "0"}},
			want: Decision{Create: 4, Active: true, ScaleTo: 5, MaxScale: 5, EffectiveMax: 8},
		},
		"safety clamp: custom at the total cap creates 0": {
			in: Inputs{Triggers: sqs(5, 1), Running: 10, MaxReplicaCount: ptr.To[int32](10),
				Settings: StrategySettings{Strategy: StrategyCustom, CustomDeduction: ptr.To[int32](-3), CustomRunningPercentage: "0"}},
			want: Decision{Create: 0, Active: true, ScaleTo: 5, MaxScale: 5, EffectiveMax: 8},
		},
		"running above the cap creates 0": {
			in:   Inputs{Triggers: sqs(50, 1), Running: 12, MaxReplicaCount: ptr.To[int32](10)},
			want: Decision{Create: 0, Active: true, ScaleTo: 50, MaxScale: 10, EffectiveMax: 0},
		},
		"negative counts are treated as 0": {
			in:   Inputs{Triggers: sqs(3, 1), Running: -4, Pending: -1, MaxReplicaCount: ptr.To[int32](10)},
			want: Decision{Create: 3, Active: true, ScaleTo: 3, MaxScale: 3, EffectiveMax: 3},
		},
		"sum of several triggers": {
			in:   Inputs{Triggers: kedaScalers(), Calculation: CalculationSum, Running: 20, MaxReplicaCount: ptr.To[int32](25)},
			want: Decision{Create: 5, Active: true, ScaleTo: 35, MaxScale: 25, EffectiveMax: 5},
		},
		"no triggers and no min": {
			in:   Inputs{MaxReplicaCount: ptr.To[int32](10)},
			want: Decision{},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := Decide(tc.in)
			if diff := cmp.Diff(tc.want, got, ignoreReason); diff != "" {
				t.Errorf("Decide() mismatch (-want +got):\n%s", diff)
			}
			if got.Reason == "" {
				t.Error("Decide() returned an empty reason")
			}
		})
	}
}

func TestDecideReason(t *testing.T) {
	cases := map[string]struct {
		in   Inputs
		want string
	}{
		"creating": {
			in:   Inputs{Triggers: []TriggerReading{active("sqs", 12, 1)}, Running: 3, MaxReplicaCount: ptr.To[int32](10)},
			want: "backlog 12 on sqs (target 1) wants 12 Jobs; 3 running, 0 pending, cap 10, default strategy: creating 7 Jobs",
		},
		"creating one of several triggers": {
			in:   Inputs{Triggers: kedaScalers(), Calculation: CalculationMin, MaxReplicaCount: ptr.To[int32](10)},
			want: "backlog 5 on s2 (target 3, min of 4 triggers) wants 2 Jobs; 0 running, 0 pending, cap 10, default strategy: creating 2 Jobs",
		},
		"avg over triggers": {
			in:   Inputs{Triggers: kedaScalers(), Calculation: CalculationAvg, MaxReplicaCount: ptr.To[int32](100)},
			want: "avg backlog 11.666666666666666 over 3 active triggers wants 9 Jobs; 0 running, 0 pending, cap 100, default strategy: creating 9 Jobs",
		},
		"inactive": {
			in:   Inputs{Triggers: []TriggerReading{inactive("sqs", 3, 1)}, MaxReplicaCount: ptr.To[int32](10)},
			want: "inactive: none of the 1 triggers is active with a backlog above 0 and there is no minReplicaCount, creating 0 Jobs",
		},
		"no triggers": {
			in:   Inputs{},
			want: "inactive: no trigger reading and no minReplicaCount, creating 0 Jobs",
		},
		"baseline fill": {
			in:   Inputs{Triggers: []TriggerReading{active("sqs", 3, 1)}, Running: 1, MinReplicaCount: ptr.To[int32](2), MaxReplicaCount: ptr.To[int32](10)},
			want: "1 running below minReplicaCount 2: creating 1 Job to fill the baseline, backlog ignored this tick",
		},
		"baseline kept, no backlog": {
			in:   Inputs{Triggers: []TriggerReading{active("sqs", 0, 1)}, Running: 2, MinReplicaCount: ptr.To[int32](2), MaxReplicaCount: ptr.To[int32](10)},
			want: "no trigger has a backlog; 2 running, 0 pending, baseline 2, cap 8, default strategy: creating 0 Jobs because the backlog needs no Jobs",
		},
		"at cap": {
			in:   Inputs{Triggers: []TriggerReading{active("sqs", 50, 1)}, Running: 10, MaxReplicaCount: ptr.To[int32](10)},
			want: "backlog 50 on sqs (target 1) wants 50 Jobs; 10 running, 0 pending, cap 10, default strategy: creating 0 Jobs because running Jobs fill the cap",
		},
		"running cover the backlog": {
			in:   Inputs{Triggers: []TriggerReading{active("sqs", 3, 1)}, Running: 4, MaxReplicaCount: ptr.To[int32](10)},
			want: "backlog 3 on sqs (target 1) wants 3 Jobs; 4 running, 0 pending, cap 10, default strategy: creating 0 Jobs because running Jobs already cover the backlog",
		},
		"pending Jobs": {
			in: Inputs{Triggers: []TriggerReading{active("sqs", 5, 1)}, Running: 5, Pending: 5, MaxReplicaCount: ptr.To[int32](10),
				Settings: StrategySettings{Strategy: StrategyAccurate}},
			want: "backlog 5 on sqs (target 1) wants 5 Jobs; 5 running, 5 pending, cap 10, accurate strategy: creating 0 Jobs because pending Jobs already cover the backlog",
		},
		"accurate at cap": {
			in: Inputs{Triggers: []TriggerReading{active("sqs", 5, 1)}, Running: 10, MaxReplicaCount: ptr.To[int32](10),
				Settings: StrategySettings{Strategy: StrategyAccurate}},
			want: "backlog 5 on sqs (target 1) wants 5 Jobs; 10 running, 0 pending, cap 10, accurate strategy: creating 0 Jobs because running Jobs fill the cap",
		},
		"eager no free slots": {
			in: Inputs{Triggers: []TriggerReading{active("sqs", 5, 1)}, Running: 6, Pending: 4, MaxReplicaCount: ptr.To[int32](10),
				Settings: StrategySettings{Strategy: StrategyEager}},
			want: "backlog 5 on sqs (target 1) wants 5 Jobs; 6 running, 4 pending, cap 10, eager strategy: creating 0 Jobs because running and pending Jobs fill the cap",
		},
		"custom deduction": {
			in: Inputs{Triggers: []TriggerReading{active("sqs", 5, 1)}, MaxReplicaCount: ptr.To[int32](10),
				Settings: StrategySettings{Strategy: StrategyCustom, CustomDeduction: ptr.To[int32](5), CustomRunningPercentage: "0"}},
			want: "backlog 5 on sqs (target 1) wants 5 Jobs; 0 running, 0 pending, cap 10, custom strategy: creating 0 Jobs because the custom deduction and running percentage leave no room",
		},
		"total cap clamp": {
			in: Inputs{Triggers: []TriggerReading{active("sqs", 5, 1)}, Running: 10, MaxReplicaCount: ptr.To[int32](10),
				Settings: StrategySettings{Strategy: StrategyCustom, CustomDeduction: ptr.To[int32](-3), CustomRunningPercentage: "0"}},
			want: "backlog 5 on sqs (target 1) wants 5 Jobs; 10 running, 0 pending, cap 10, custom strategy: creating 0 Jobs because the total cap 10 is reached",
		},
		"total cap limits": {
			in: Inputs{Triggers: []TriggerReading{active("sqs", 5, 1)}, Running: 6, MaxReplicaCount: ptr.To[int32](10),
				Settings: StrategySettings{Strategy: StrategyCustom, CustomDeduction: ptr.To[int32](-3), CustomRunningPercentage: "0"}},
			want: "backlog 5 on sqs (target 1) wants 5 Jobs; 6 running, 0 pending, cap 10, custom strategy: creating 4 Jobs (limited so that Jobs stay within the total cap 10)",
		},
		"eager ignores the raw backlog": {
			in: Inputs{Triggers: []TriggerReading{active("sqs", 0.5, 0.01)}, MaxReplicaCount: ptr.To[int32](10),
				Settings: StrategySettings{Strategy: StrategyEager}},
			want: "backlog 0.5 on sqs (target 0.01) wants 50 Jobs; 0 running, 0 pending, cap 10, eager strategy: creating 10 Jobs",
		},
		"target 0": {
			in:   Inputs{Triggers: []TriggerReading{active("sqs", 7, 0)}, MaxReplicaCount: ptr.To[int32](10)},
			want: "backlog 7 on sqs (target 0) wants 0 Jobs; 0 running, 0 pending, cap 10, default strategy: creating 0 Jobs because the backlog needs no Jobs",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Decide(tc.in).Reason); diff != "" {
				t.Errorf("Decide().Reason mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSaturatingHelpers(t *testing.T) {
	cases := map[string]struct {
		got, want int64
	}{
		"add overflow":   {got: addSat(math.MaxInt64, 1), want: math.MaxInt64},
		"add underflow":  {got: addSat(math.MinInt64, -1), want: math.MinInt64},
		"add plain":      {got: addSat(2, 3), want: 5},
		"sub overflow":   {got: subSat(math.MaxInt64, -1), want: math.MaxInt64},
		"sub underflow":  {got: subSat(math.MinInt64, 1), want: math.MinInt64},
		"sub plain":      {got: subSat(2, 3), want: -1},
		"ceil NaN":       {got: ceilToInt64(math.NaN()), want: 0},
		"ceil +Inf":      {got: ceilToInt64(math.Inf(1)), want: math.MaxInt64},
		"ceil -Inf":      {got: ceilToInt64(math.Inf(-1)), want: math.MinInt64},
		"ceil 2^63":      {got: ceilToInt64(math.Exp2(63)), want: math.MaxInt64},
		"ceil fraction":  {got: ceilToInt64(8.0001), want: 9},
		"ceil negative":  {got: ceilToInt64(-1.5), want: -1},
		"trunc negative": {got: truncToInt64(-1.5), want: -1},
		"trunc positive": {got: truncToInt64(1.5), want: 1},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
