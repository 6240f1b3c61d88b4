package dispatch

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// This file reproduces KEDA's ScaledJob scaling math (keda-scaledjob-reference.md §2.1-§2.7) as pure
// functions. Everything here is deterministic: no client, clock or logger.
//
// Notation, as in the reference: Q = backlog (queue length), T = per-Job target, M = Q/T capped at the
// effective max, R = unfinished (running) Jobs, P = pending Jobs, minE/maxE = normalised min/max.
//
// Integer arithmetic saturates at the int64 limits instead of wrapping, and float-to-integer conversions
// saturate (NaN becomes 0). For every realistic input the results are exactly KEDA's; the saturation only
// keeps absurd inputs from wrapping into large positive Job counts.

// Strategy names a ScaledJob scaling strategy (scalingStrategy.strategy).
type Strategy string

// The scaling strategies KEDA supports (§2.6).
const (
	// StrategyDefault targets ceil(Q/T) Jobs in total: E = maxScale - R'.
	StrategyDefault Strategy = "default"
	// StrategyCustom deducts a fixed count and a percentage of the running Jobs.
	StrategyCustom Strategy = "custom"
	// StrategyAccurate suits queues that exclude in-flight messages and accounts for pending Jobs.
	StrategyAccurate Strategy = "accurate"
	// StrategyEager fills free slots up to maxScale on every poll.
	StrategyEager Strategy = "eager"
)

// Calculation names how the readings of several triggers are combined
// (scalingStrategy.multipleScalersCalculation).
type Calculation string

// The combinations KEDA supports (§2.3).
const (
	// CalculationMax picks the active trigger with the largest backlog.
	CalculationMax Calculation = "max"
	// CalculationMin picks the active trigger with the smallest backlog.
	CalculationMin Calculation = "min"
	// CalculationAvg averages backlogs and Job counts over the active triggers.
	CalculationAvg Calculation = "avg"
	// CalculationSum adds up backlogs and Job counts over the active triggers.
	CalculationSum Calculation = "sum"
)

// defaultMaxReplicaCount is KEDA's maxReplicaCount when the spec leaves it unset.
const defaultMaxReplicaCount = 100

// TriggerReading is one trigger's backlog reading for one tick.
type TriggerReading struct {
	// Name is the trigger name or "<type>[<index>]"; it is used in the reason.
	Name string
	// Backlog is Q_i, the raw backlog (e.g. messages).
	Backlog float64
	// Target is T_i, the per-Job target (queueLength etc.); 0 means the trigger yields 0 Jobs.
	Target float64
	// Active is the trigger's own activity (e.g. Backlog > activation threshold).
	Active bool
}

// StrategySettings holds the scalingStrategy fields that shape the effective max.
type StrategySettings struct {
	// Strategy is the configured strategy; "" means default.
	Strategy Strategy
	// CustomDeduction is customScalingQueueLengthDeduction; nil counts as 0.
	CustomDeduction *int32
	// CustomRunningPercentage is customScalingRunningJobPercentage, parsed as a float. If it does not
	// parse, the custom strategy falls back to default, as in KEDA.
	CustomRunningPercentage string
}

// Inputs is everything Decide needs for one ScaledJob and one tick.
type Inputs struct {
	// Triggers holds one reading per trigger that answered this tick, in spec order.
	Triggers []TriggerReading
	// FailedTriggers names the triggers whose reading failed or is stale. With CalculationSum the answered
	// triggers still count (dropping one can only lower the total); with max, min or avg nothing beyond the
	// minReplicaCount baseline is created while any trigger fails.
	FailedTriggers []string
	// Calculation combines several triggers; "" means max.
	Calculation Calculation
	// Running is R, the unfinished Jobs, pending ones included. Negative values count as 0.
	Running int64
	// Pending is P, the pending Jobs, a subset of Running. Negative values count as 0.
	Pending int64
	// MinReplicaCount is spec.minReplicaCount (nil = unset).
	MinReplicaCount *int32
	// MaxReplicaCount is spec.maxReplicaCount (nil = unset).
	MaxReplicaCount *int32
	// Settings holds the scaling strategy.
	Settings StrategySettings
}

// Decision is the outcome of Decide, with the intermediate values that explain it.
type Decision struct {
	// Create is the number of Jobs to create now, >= 0.
	Create int64
	// Active is the combined activity (forced true when the normalised min is > 0).
	Active bool
	// ScaleTo is ceil(Q) after combination.
	ScaleTo int64
	// MaxScale is ceil(M) after combination and cap.
	MaxScale int64
	// EffectiveMax is E after the strategy (or the baseline fill), floored at 0.
	EffectiveMax int64
	// Reason is one human-readable sentence with the numbers behind Create.
	Reason string
}

// StrategyInputs are the positional inputs of KEDA's GetEffectiveMaxScale, named.
type StrategyInputs struct {
	// MaxScale is ceil(min(Q/T, maxE)) after combination.
	MaxScale int64
	// Running is R', the unfinished Jobs above the baseline (R - minE).
	Running int64
	// Pending is P, the pending Jobs (not adjusted for the baseline).
	Pending int64
	// MaxReplicaCount is maxE, the normalised max.
	MaxReplicaCount int64
	// ScaleTo is ceil(Q) after combination.
	ScaleTo int64
}

// Normalise reproduces KEDA's MinReplicaCount()/MaxReplicaCount() (§2.4): minE is 0 when unset and is
// clamped to max when min > max; maxE is 100 when max is unset (the min is not subtracted then), max when
// min > max, and max - minE otherwise.
func Normalise(minCount, maxCount *int32) (minE, maxE int64) {
	if minCount != nil {
		minE = int64(*minCount)
	}
	if maxCount == nil {
		return minE, defaultMaxReplicaCount
	}
	maxV := int64(*maxCount)
	if minE > maxV {
		return maxV, maxV
	}
	return minE, maxV - minE
}

// MeanTarget reproduces KEDA's getTargetAverageValue: the arithmetic mean of a multi-metric trigger's
// target average values, 0 for none.
func MeanTarget(targets []float64) float64 {
	if len(targets) == 0 {
		return 0
	}
	var sum float64
	for _, t := range targets {
		sum += t
	}
	return sum / float64(len(targets))
}

// Combine reproduces KEDA's getScaledJobState: it combines the active triggers by calc, forces activity
// when minE > 0, caps M at maxE and rounds both values up (§2.1 steps 2-3, §2.3). Inactive triggers
// contribute nothing. An unknown calc behaves as max.
func Combine(triggers []TriggerReading, calc Calculation, minE, maxE int64) (active bool, scaleTo, maxScale int64) {
	c := combine(triggers, calc, float64(maxE))
	active = c.active || minE > 0
	return active, ceilToInt64(c.queue), ceilToInt64(math.Min(c.jobs, float64(maxE)))
}

// combination is the raw (float) result of combining trigger readings.
type combination struct {
	active bool
	queue  float64 // Q
	jobs   float64 // M, before the final cap
	picked int     // index of the trigger max/min picked, -1 when none or for avg/sum
	used   int     // number of active triggers that took part (avg/sum)
}

// combine combines the active readings by calc, capping each trigger's Job count at capJobs.
func combine(triggers []TriggerReading, calc Calculation, capJobs float64) combination {
	c := combination{picked: -1}
	switch calc {
	case CalculationMin:
		// KEDA takes an active trigger when nothing has been taken yet (Q == 0) or its backlog is
		// smaller; so a 0 backlog is replaced by the next active trigger's.
		for i, t := range triggers {
			if t.Active && (c.queue == 0 || t.Backlog < c.queue) {
				c.active, c.queue, c.jobs, c.picked = true, t.Backlog, triggerJobs(t, capJobs), i
			}
		}
	case CalculationAvg, CalculationSum:
		for _, t := range triggers {
			if !t.Active {
				continue
			}
			c.active = true
			c.used++
			c.queue += t.Backlog
			c.jobs += triggerJobs(t, capJobs)
		}
		if calc == CalculationAvg && c.used > 0 {
			c.queue /= float64(c.used)
			c.jobs /= float64(c.used)
		}
	default: // CalculationMax, "" and unknown values.
		// Only a strictly larger positive backlog is taken; active triggers with Q <= 0 leave the
		// combination inactive.
		for i, t := range triggers {
			if t.Active && t.Backlog > c.queue {
				c.active, c.queue, c.jobs, c.picked = true, t.Backlog, triggerJobs(t, capJobs), i
			}
		}
	}
	return c
}

// triggerJobs is M_i: min(Q_i/T_i, capJobs), or 0 when T_i is 0.
func triggerJobs(t TriggerReading, capJobs float64) float64 {
	if t.Target == 0 {
		return 0
	}
	return math.Min(t.Backlog/t.Target, capJobs)
}

// ResolveStrategy returns the strategy actually applied: "" and unknown values mean default, and custom
// with a percentage that does not parse as a finite float means default (KEDA also falls back for
// unparsable values; it would accept "NaN" and "Inf", which we treat as unparsable).
func ResolveStrategy(s StrategySettings) Strategy {
	switch s.Strategy {
	case StrategyCustom:
		if _, ok := parsePercentage(s.CustomRunningPercentage); ok {
			return StrategyCustom
		}
		return StrategyDefault
	case StrategyAccurate, StrategyEager:
		return s.Strategy
	default:
		return StrategyDefault
	}
}

// parsePercentage parses customScalingRunningJobPercentage; ok is false unless it is a finite float.
func parsePercentage(s string) (float64, bool) {
	p, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(p) || math.IsInf(p, 0) {
		return 0, false
	}
	return p, true
}

// EffectiveMax reproduces GetEffectiveMaxScale of the strategy ResolveStrategy(s) picks (§2.6). It returns
// E (not floored) and the scaleTo to use; only eager changes scaleTo (to maxE).
func EffectiveMax(s StrategySettings, in StrategyInputs) (effectiveMax, scaleTo int64) {
	switch ResolveStrategy(s) {
	case StrategyCustom:
		p, _ := parsePercentage(s.CustomRunningPercentage)
		var deduction int64
		if s.CustomDeduction != nil {
			deduction = int64(*s.CustomDeduction)
		}
		e := subSat(subSat(in.MaxScale, deduction), truncToInt64(float64(in.Running)*p))
		return min(e, in.MaxReplicaCount), in.ScaleTo
	case StrategyAccurate:
		if subSat(addSat(in.MaxScale, in.Running), in.Pending) > in.MaxReplicaCount {
			return subSat(in.MaxReplicaCount, in.Running), in.ScaleTo
		}
		return subSat(in.MaxScale, in.Pending), in.ScaleTo
	case StrategyEager:
		return min(subSat(subSat(in.MaxReplicaCount, in.Running), in.Pending), in.MaxScale), in.MaxReplicaCount
	default:
		return subSat(in.MaxScale, in.Running), in.ScaleTo
	}
}

// scalingDecision reproduces KEDA's getScalingDecision (§2.1 step 5): below the baseline only the baseline
// is filled (E = scaleTo = minE - R, queue and strategy ignored); otherwise the strategy runs on
// R' = R - minE. E is floored at 0.
func scalingDecision(s StrategySettings, minE, maxE, running, pending, scaleTo, maxScale int64) (e, want int64) {
	if running < minE {
		e = subSat(minE, running)
		return e, e
	}
	e, want = EffectiveMax(s, StrategyInputs{
		MaxScale:        maxScale,
		Running:         subSat(running, minE),
		Pending:         pending,
		MaxReplicaCount: maxE,
		ScaleTo:         scaleTo,
	})
	return max(e, 0), want
}

// Decide computes how many Jobs to create this tick: Normalise, Combine, the baseline fill or the strategy,
// then Create = min(scaleTo, E) when active, else 0. These steps reproduce KEDA exactly.
//
// One deliberate safety difference from KEDA: Create is clamped so that Running + Create never exceeds
// minE + maxE (the spec max when min <= max; with max unset KEDA's 100 + min is kept; with min > max
// KEDA's 2*max is kept). The clamp never bites for the default, accurate and eager strategies or the
// baseline fill; it only changes results of custom strategies whose deduction or percentage would
// overshoot the cap (e.g. a negative deduction).
func Decide(in Inputs) Decision {
	minE, maxE := Normalise(in.MinReplicaCount, in.MaxReplicaCount)
	answered := UsableReadings(in.Triggers, in.FailedTriggers, in.Calculation)
	active, scaleTo, maxScale := Combine(answered, in.Calculation, minE, maxE)
	running, pending := max(in.Running, 0), max(in.Pending, 0)

	e, want := scalingDecision(in.Settings, minE, maxE, running, pending, scaleTo, maxScale)
	var create int64
	if active {
		create = max(min(want, e), 0)
	}
	capTotal := minE + maxE // both come from int32 values, so this cannot overflow.
	room := max(subSat(capTotal, running), 0)
	clamped := create > room
	create = min(create, room)

	d := Decision{Create: create, Active: active, ScaleTo: scaleTo, MaxScale: maxScale, EffectiveMax: e}
	d.Reason = explain(explanation{
		in: in, strategy: ResolveStrategy(in.Settings), minE: minE, maxE: maxE, capTotal: capTotal,
		running: running, pending: pending, clamped: clamped, decision: d,
	}) + partialNote(in.FailedTriggers, in.Calculation)
	if create == 0 && len(in.FailedTriggers) > 0 && len(answered) == 0 {
		// Nothing was decided on readings at all: say so first.
		d.Reason = "no Jobs beyond the minReplicaCount baseline: " + strings.TrimSuffix(strings.TrimPrefix(partialNote(in.FailedTriggers, in.Calculation), " ("), ")")
	}
	return d
}

// UsableReadings applies the partial-failure rule: with no failed trigger, or with sum, the answered readings are
// used; with max, min or avg (whose result a missing trigger could raise) none are, so only the baseline is kept.
func UsableReadings(answered []TriggerReading, failed []string, calc Calculation) []TriggerReading {
	if len(failed) == 0 || calc == CalculationSum {
		return answered
	}
	return nil
}

// partialNote says which triggers failed and what the rule did about it.
func partialNote(failed []string, calc Calculation) string {
	if len(failed) == 0 {
		return ""
	}
	return fmt.Sprintf(" (trigger %s failed to read: %s)", strings.Join(failed, ", "), PartialRule(calc))
}

// PartialRule says, in words, what UsableReadings does while a trigger fails under calc.
func PartialRule(calc Calculation) string {
	if calc == CalculationSum {
		return "sum counts the other triggers only; the minReplicaCount baseline is kept"
	}
	if calc == "" {
		calc = CalculationMax
	}
	return fmt.Sprintf("with %s nothing beyond the minReplicaCount baseline is created until it answers", calc)
}

// explanation gathers what Decide knows, for the reason sentence.
type explanation struct {
	in                   Inputs
	strategy             Strategy
	minE, maxE, capTotal int64
	running, pending     int64
	clamped              bool
	decision             Decision
}

// explain renders the one-sentence reason for a decision, saying why when it creates nothing.
func explain(x explanation) string {
	d := x.decision
	jobs := plural(d.Create)
	if !d.Active {
		if len(x.in.Triggers) == 0 {
			return "inactive: no trigger reading and no minReplicaCount, creating 0 Jobs"
		}
		return fmt.Sprintf("inactive: none of the %d triggers is active with a backlog above 0 and there is no minReplicaCount, creating 0 Jobs",
			len(x.in.Triggers))
	}
	if x.running < x.minE {
		return fmt.Sprintf("%d running below minReplicaCount %d: creating %d %s to fill the baseline, backlog ignored this tick",
			x.running, x.minE, d.Create, jobs)
	}
	var b strings.Builder
	b.WriteString(describeDemand(x.in, x.maxE))
	fmt.Fprintf(&b, "; %d running, %d pending", x.running, x.pending)
	if x.minE > 0 {
		fmt.Fprintf(&b, ", baseline %d", x.minE)
	}
	fmt.Fprintf(&b, ", cap %d, %s strategy: creating %d %s", x.maxE, x.strategy, d.Create, jobs)
	switch {
	case d.Create == 0:
		fmt.Fprintf(&b, " because %s", whyNone(x))
	case x.clamped:
		fmt.Fprintf(&b, " (limited so that Jobs stay within the total cap %d)", x.capTotal)
	}
	return b.String()
}

// describeDemand says which backlog drives the decision and how many Jobs it wants before the cap.
func describeDemand(in Inputs, maxE int64) string {
	calc := in.Calculation
	if calc == "" {
		calc = CalculationMax
	}
	uncapped := combine(in.Triggers, calc, math.Inf(1))
	wanted := ceilToInt64(uncapped.jobs)
	switch {
	case uncapped.picked >= 0:
		t := in.Triggers[uncapped.picked]
		s := fmt.Sprintf("backlog %s on %s (target %s", formatFloat(t.Backlog), t.Name, formatFloat(t.Target))
		if len(in.Triggers) > 1 {
			s += fmt.Sprintf(", %s of %d triggers", calc, len(in.Triggers))
		}
		return s + fmt.Sprintf(") wants %d %s", wanted, plural(wanted))
	case uncapped.active:
		return fmt.Sprintf("%s backlog %s over %d active triggers wants %d %s",
			calc, formatFloat(uncapped.queue), uncapped.used, wanted, plural(wanted))
	default:
		return "no trigger has a backlog"
	}
}

// whyNone explains why an active decision above the baseline creates no Jobs.
func whyNone(x explanation) string {
	d := x.decision
	rPrime := subSat(x.running, x.minE)
	switch {
	case x.clamped:
		return fmt.Sprintf("the total cap %d is reached", x.capTotal)
	case d.MaxScale <= 0:
		return "the backlog needs no Jobs"
	case d.EffectiveMax <= 0:
		switch x.strategy {
		case StrategyAccurate:
			if subSat(addSat(d.MaxScale, rPrime), x.pending) > x.maxE {
				return "running Jobs fill the cap"
			}
			return "pending Jobs already cover the backlog"
		case StrategyEager:
			return "running and pending Jobs fill the cap"
		case StrategyCustom:
			return "the custom deduction and running percentage leave no room"
		default:
			if rPrime >= x.maxE {
				return "running Jobs fill the cap"
			}
			return "running Jobs already cover the backlog"
		}
	default:
		return "the raw backlog rounds to 0 Jobs"
	}
}

func plural(n int64) string {
	if n == 1 {
		return "Job"
	}
	return "Jobs"
}

func formatFloat(f float64) string {
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// ceilToInt64 rounds up and converts, saturating at the int64 limits; NaN becomes 0.
func ceilToInt64(f float64) int64 {
	return truncToInt64(math.Ceil(f))
}

// truncToInt64 converts toward zero, saturating at the int64 limits; NaN becomes 0.
func truncToInt64(f float64) int64 {
	switch {
	case math.IsNaN(f):
		return 0
	case f >= math.MaxInt64: // float64(MaxInt64) rounds up to 2^63, which int64 cannot hold.
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	default:
		return int64(f)
	}
}

// addSat returns a+b, saturating at the int64 limits.
func addSat(a, b int64) int64 {
	c := a + b
	switch {
	case b > 0 && c < a:
		return math.MaxInt64
	case b < 0 && c > a:
		return math.MinInt64
	default:
		return c
	}
}

// subSat returns a-b, saturating at the int64 limits.
func subSat(a, b int64) int64 {
	c := a - b
	switch {
	case b > 0 && c > a:
		return math.MinInt64
	case b < 0 && c < a:
		return math.MaxInt64
	default:
		return c
	}
}
