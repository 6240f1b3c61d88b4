package dispatch

import (
	"math"
	"testing"
)

// FuzzDecide checks Decide's invariants over arbitrary counts, limits, readings and strategy settings:
// it never panics, Create >= 0, an inactive decision creates nothing, and Running + Create never exceeds
// the total cap minE + maxE.
func FuzzDecide(f *testing.F) {
	f.Add(int32(0), false, int32(10), true, 12.0, 1.0, true, 3.0, 2.0, false, int64(3), int64(1), uint8(0), uint8(0), int32(0), "")
	f.Add(int32(2), true, int32(10), true, 3.0, 1.0, true, 0.0, 0.0, false, int64(0), int64(0), uint8(1), uint8(3), int32(1), "0.5")
	f.Add(int32(10), true, int32(1), true, 5.0, 1.0, true, 5.0, 0.0, true, int64(1), int64(1), uint8(2), uint8(2), int32(-3), "0")
	f.Add(int32(0), false, int32(0), false, 1e300, 1e-300, true, -5.0, -1.0, true, int64(math.MaxInt64), int64(-1), uint8(3), uint8(1), int32(math.MinInt32), "1e300")
	f.Add(int32(-5), true, int32(-3), true, math.Inf(1), 1.0, true, math.Inf(-1), 1.0, true, int64(-7), int64(9), uint8(1), uint8(3), int32(-100), "-2")

	strategies := []Strategy{"", StrategyDefault, StrategyCustom, StrategyAccurate, StrategyEager, "bogus"}
	calculations := []Calculation{"", CalculationMax, CalculationMin, CalculationAvg, CalculationSum, "bogus"}

	f.Fuzz(func(t *testing.T, minV int32, minSet bool, maxV int32, maxSet bool,
		q1, t1 float64, a1 bool, q2, t2 float64, a2 bool,
		running, pending int64, strategy, calc uint8, deduction int32, percentage string) {
		for _, v := range []float64{q1, t1, q2, t2} {
			if math.IsNaN(v) {
				t.Skip("NaN readings are out of scope")
			}
		}
		in := Inputs{
			Triggers:    []TriggerReading{{Name: "a", Backlog: q1, Target: t1, Active: a1}, {Name: "b", Backlog: q2, Target: t2, Active: a2}},
			Calculation: calculations[int(calc)%len(calculations)],
			Running:     running,
			Pending:     pending,
			Settings: StrategySettings{
				Strategy:                strategies[int(strategy)%len(strategies)],
				CustomDeduction:         &deduction,
				CustomRunningPercentage: percentage,
			},
		}
		if minSet {
			in.MinReplicaCount = &minV
		}
		if maxSet {
			in.MaxReplicaCount = &maxV
		}

		d := Decide(in)

		if d.Create < 0 {
			t.Fatalf("Create = %d, want >= 0 (%+v)", d.Create, d)
		}
		if !d.Active && d.Create != 0 {
			t.Fatalf("inactive decision creates %d, want 0 (%+v)", d.Create, d)
		}
		if d.EffectiveMax < 0 {
			t.Fatalf("EffectiveMax = %d, want >= 0 (%+v)", d.EffectiveMax, d)
		}
		minE, maxE := Normalise(in.MinReplicaCount, in.MaxReplicaCount)
		capTotal := minE + maxE
		r := max(running, 0)
		// Compare without computing capTotal - r, which could overflow for huge running counts.
		if r >= capTotal && d.Create != 0 {
			t.Fatalf("running %d at or above total cap %d but Create = %d", r, capTotal, d.Create)
		}
		if r < capTotal && d.Create > capTotal-r {
			t.Fatalf("running %d + Create %d exceeds total cap %d", r, d.Create, capTotal)
		}
		if d.Reason == "" {
			t.Fatal("empty reason")
		}
	})
}
