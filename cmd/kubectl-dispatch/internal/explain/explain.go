package explain

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/dispatch"
)

// Job states in an Explanation.
const (
	StateRunning   = "running"
	StatePending   = "pending"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
)

// Input is what Explain reads: the ScaledJob with its status, the Jobs labelled for it and their pods.
type Input struct {
	ScaledJob *v1alpha1.ScaledJob
	// Jobs are the Jobs with label kubedispatch.io/scaledjob=<name>; those the ScaledJob does not control are
	// ignored, as the dispatcher ignores them.
	Jobs []batchv1.Job
	// Pods are the pods of those Jobs (matched to their Job by controller owner reference or job-name label).
	Pods []corev1.Pod
	// Now is the time of the explanation, for the failing-Jobs back-off and the capacity windows.
	Now time.Time
	// Quotas are the namespace's ResourceQuotas; QuotaErr says why they could not be read ("" when they were).
	Quotas   []corev1.ResourceQuota
	QuotaErr string
	// Live, when set (one per trigger, in spec order), replaces the last readings from status: the triggers read
	// just now by explain --live.
	Live []dispatch.LiveReading
}

// Explanation is the decision for one ScaledJob, step by step.
type Explanation struct {
	// ScaledJob is namespace/name.
	ScaledJob string `json:"scaledJob"`
	// Generation is the ScaledJob's metadata.generation; StatusGeneration the one its status describes.
	Generation       int64 `json:"generation"`
	StatusGeneration int64 `json:"statusGeneration"`
	// Triggers are the last readings from status.triggers, in spec order.
	Triggers []Trigger `json:"triggers"`
	// Calculation is multipleScalersCalculation after defaulting.
	Calculation string `json:"multipleScalersCalculation"`
	// FailedTriggers are the triggers without a usable reading; PartialRule says what that does.
	FailedTriggers []string `json:"failedTriggers,omitempty"`
	PartialRule    string   `json:"partialRule,omitempty"`
	// Combined is the combination of the usable readings.
	Combined Combined `json:"combined"`
	// Replicas are min/max as written and after normalisation.
	Replicas Replicas `json:"replicas"`
	// Jobs counts the ScaledJob's Jobs; Unfinished lists the running ones with why each is or is not pending.
	Jobs       JobCounts `json:"jobs"`
	Unfinished []Job     `json:"unfinished,omitempty"`
	// Strategy is the strategy applied (after KEDA's fallbacks) and EffectiveMax its E.
	Strategy     string `json:"strategy"`
	EffectiveMax int64  `json:"effectiveMax"`
	// WouldCreate is what the decision asks for; Create is what is created once Blockers are applied.
	WouldCreate int64  `json:"wouldCreate"`
	Create      int64  `json:"create"`
	Reason      string `json:"reason"`
	// Blockers say what stops or limits creation.
	Blockers []string `json:"blockers,omitempty"`
	// Notes are caveats about the explanation itself.
	Notes []string `json:"notes,omitempty"`
	// LastDecision is the dispatcher's own last decision from status.
	LastDecision *v1alpha1.Decision `json:"lastDecision,omitempty"`
}

// Trigger is one trigger's last reading.
type Trigger struct {
	Name      string       `json:"name"`
	Type      string       `json:"type"`
	Backlog   *float64     `json:"backlog,omitempty"`
	Target    *float64     `json:"target,omitempty"`
	Active    bool         `json:"active"`
	Jobs      int64        `json:"jobs"`
	Error     string       `json:"error,omitempty"`
	SampledAt *metav1.Time `json:"sampledAt,omitempty"`
}

// Combined is the outcome of combining the readings.
type Combined struct {
	Active   bool  `json:"active"`
	ScaleTo  int64 `json:"scaleTo"`
	MaxScale int64 `json:"maxScale"`
}

// Replicas are the replica bounds as written (nil = unset) and normalised.
type Replicas struct {
	Min *int32 `json:"minReplicaCount,omitempty"`
	Max *int32 `json:"maxReplicaCount,omitempty"`
	// Window names the open capacity window that replaces min/max ("" when the spec's apply), with its close.
	Window string `json:"window,omitempty"`
	// NextWindowChange is the next opening or closing of a capacity window and what it changes.
	NextWindowChange string `json:"nextWindowChange,omitempty"`
	MinEffective     int64  `json:"minEffective"`
	MaxEffective     int64  `json:"maxEffective"`
}

// JobCounts counts Jobs by state; Running includes Pending.
type JobCounts struct {
	Running   int64 `json:"running"`
	Pending   int64 `json:"pending"`
	Succeeded int64 `json:"succeeded"`
	Failed    int64 `json:"failed"`
	Ignored   int64 `json:"ignored,omitempty"`
}

// Job is one unfinished Job and why it counts as pending or running.
type Job struct {
	Name  string `json:"name"`
	State string `json:"state"`
	Why   string `json:"why"`
}

// Explain maps the ScaledJob, its Jobs and pods onto dispatch.Decide's inputs, runs it and says what blocks
// creation. It reads nothing else and changes nothing.
func Explain(in Input) Explanation {
	sj := in.ScaledJob
	spec := &sj.Spec
	x := Explanation{
		ScaledJob:        sj.Namespace + "/" + sj.Name,
		Generation:       sj.Generation,
		StatusGeneration: sj.Status.ObservedGeneration,
		Calculation:      spec.ScalersCalculation(),
		Replicas:         Replicas{Min: spec.MinReplicaCount, Max: spec.MaxReplicaCount},
		LastDecision:     sj.Status.LastDecision,
	}
	// Capacity windows replace min/max while open, as in the dispatcher.
	ws, capEv := dispatch.EffectiveCapacity(sj, in.Now)
	limits := capEv.Limits
	x.Replicas.Window = capEv.Reason(ws)
	if n := capEv.Next; n != nil {
		x.Replicas.NextWindowChange = fmt.Sprintf("%s at %s", n.Describe(), n.At.Format(time.RFC3339))
	}
	minE, maxE := dispatch.Normalise(limits.Min, limits.Max)
	x.Replicas.MinEffective, x.Replicas.MaxEffective = minE, maxE

	// 1. Readings: the last one per trigger from status; a trigger with an error or no reading is failed.
	var readings []dispatch.TriggerReading
	for i := range spec.Triggers {
		t := &spec.Triggers[i]
		tr := Trigger{Name: t.EffectiveName(i), Type: t.Type}
		st := statusOf(sj, tr.Name)
		if len(in.Live) == len(spec.Triggers) {
			st = liveStatus(in.Live[i], in.Now)
		}
		switch {
		case st == nil:
			tr.Error = "no reading in status yet"
		case st.LastError != "":
			tr.Error = st.LastError
		}
		if st != nil {
			tr.Active, tr.SampledAt = st.Active, st.SampledAt
			tr.Backlog, tr.Target = parseFloat(st.Backlog), parseFloat(st.Target)
			if tr.Error == "" && (tr.Backlog == nil || tr.Target == nil) {
				tr.Error = fmt.Sprintf("status has no usable backlog/target (%q/%q)", st.Backlog, st.Target)
			}
		}
		if tr.Error != "" {
			x.FailedTriggers = append(x.FailedTriggers, tr.Name)
		} else {
			r := dispatch.TriggerReading{Name: tr.Name, Backlog: *tr.Backlog, Target: *tr.Target, Active: tr.Active}
			readings = append(readings, r)
			// The trigger's own Job count: the combination of this reading alone, uncapped.
			_, _, tr.Jobs = dispatch.Combine([]dispatch.TriggerReading{r}, dispatch.CalculationSum, 0, math.MaxInt32)
		}
		x.Triggers = append(x.Triggers, tr)
	}
	calc := dispatch.Calculation(x.Calculation)
	if len(x.FailedTriggers) > 0 {
		x.PartialRule = dispatch.PartialRule(calc)
	}
	usable := dispatch.UsableReadings(readings, x.FailedTriggers, calc)
	x.Combined.Active, x.Combined.ScaleTo, x.Combined.MaxScale = dispatch.Combine(usable, calc, minE, maxE)

	// 2. Jobs: those the ScaledJob controls, with the dispatcher's pending rule.
	x.Jobs, x.Unfinished = countJobs(sj, in.Jobs, in.Pods)

	// 3. The decision.
	settings := dispatch.StrategySettings{
		Strategy:                dispatch.Strategy(spec.ScalingStrategyName()),
		CustomDeduction:         spec.ScalingStrategy.CustomScalingQueueLengthDeduction,
		CustomRunningPercentage: spec.ScalingStrategy.CustomScalingRunningJobPercentage,
	}
	d := dispatch.Decide(dispatch.Inputs{
		Triggers:        readings,
		FailedTriggers:  x.FailedTriggers,
		Calculation:     calc,
		Running:         x.Jobs.Running,
		Pending:         x.Jobs.Pending,
		MinReplicaCount: limits.Min,
		MaxReplicaCount: limits.Max,
		Settings:        settings,
	})
	x.Strategy = string(dispatch.ResolveStrategy(settings))
	x.EffectiveMax, x.WouldCreate, x.Create, x.Reason = d.EffectiveMax, d.Create, d.Create, d.Reason

	// 4. What blocks creation.
	blocked := false
	if v1alpha1.IsPaused(sj) {
		blocked = true
		x.Blockers = append(x.Blockers, fmt.Sprintf("paused by annotation %s=%q: nothing is created (triggers are still read, history is still pruned)",
			v1alpha1.AnnotationPaused, sj.Annotations[v1alpha1.AnnotationPaused]))
	}
	if _, errs := dispatch.Validate(sj); len(errs) > 0 {
		blocked = true
		x.Blockers = append(x.Blockers, "invalid spec: "+errs.ToAggregate().Error())
	}
	if c := readyCondition(sj); c != nil && c.Status == metav1.ConditionFalse {
		switch c.Reason {
		case dispatch.ReasonInvalidSpec, "InvalidTrigger":
			blocked = true
			x.Blockers = append(x.Blockers, fmt.Sprintf("Ready=False, reason %s: %s", c.Reason, c.Message))
		default:
			x.Notes = append(x.Notes, fmt.Sprintf("Ready=False, reason %s: %s", c.Reason, c.Message))
		}
	}
	for _, t := range x.Triggers {
		if t.Error != "" {
			x.Blockers = append(x.Blockers, fmt.Sprintf("trigger %s failed: %s; %s", t.Name, t.Error, x.PartialRule))
		}
	}
	if bo := dispatch.FailingJobsBackoff(dispatch.BackoffInputs{
		Outcomes: outcomes(sj, in.Jobs), Unfinished: x.Jobs.Running, Now: in.Now,
	}); bo.Active && x.Create > bo.Allowed {
		x.Create = bo.Allowed
		x.Blockers = append(x.Blockers, dispatch.ReasonFailingJobsBackoff+": "+bo.Explain())
	}
	quotaBlocked, quotaNotes := quotaBlockers(in.Quotas, sj.Spec.IsMessageMode())
	if len(quotaBlocked) > 0 {
		blocked = true
		x.Blockers = append(x.Blockers, quotaBlocked...)
	}
	x.Notes = append(x.Notes, quotaNotes...)
	if in.QuotaErr != "" {
		x.Notes = append(x.Notes, in.QuotaErr)
	}
	if c := readyCondition(sj); c != nil && c.Reason == dispatch.ReasonJobCreateFailed && strings.Contains(c.Message, "exceeded quota") {
		x.Blockers = append(x.Blockers, "the last Job creation was refused by a ResourceQuota: "+c.Message)
	}
	if blocked {
		x.Create = 0
	}

	if len(in.Live) == len(spec.Triggers) {
		x.Notes = append(x.Notes, fmt.Sprintf("readings taken by explain --live at %s with the ScaledJob's credentials, not the dispatcher's last readings",
			in.Now.UTC().Format(time.RFC3339)))
	}

	// 5. Caveats.
	if sj.Generation != 0 && sj.Status.ObservedGeneration != sj.Generation {
		x.Notes = append(x.Notes, fmt.Sprintf("status describes generation %d but the spec is at generation %d: readings may be from the older spec",
			sj.Status.ObservedGeneration, sj.Generation))
	}
	if spec.Dispatch != nil && spec.Dispatch.Mode == "message" {
		x.Notes = append(x.Notes, "dispatch.mode is message: Jobs are created per received message, not by this count")
	}
	if x.Jobs.Ignored > 0 {
		x.Notes = append(x.Notes, fmt.Sprintf("%d Jobs carry the label but are not controlled by this ScaledJob: they are not counted", x.Jobs.Ignored))
	}
	x.Notes = append(x.Notes, "the dispatcher also counts Jobs it created but does not see yet, and creates at most --max-creates-per-tick (500 by default) per tick")
	return x
}

// countJobs counts the Jobs sj controls and explains each unfinished one with dispatch.JobPending, on the pods the
// dispatcher itself counts (the unfinished ones).
func countJobs(sj *v1alpha1.ScaledJob, jobs []batchv1.Job, pods []corev1.Pod) (JobCounts, []Job) {
	podsByJob := map[string][]corev1.Pod{}
	for i := range pods {
		if !dispatch.Unfinished(&pods[i]) {
			continue
		}
		if name := dispatch.JobNameOf(&pods[i]); name != "" {
			podsByJob[name] = append(podsByJob[name], pods[i])
		}
	}
	sorted := append([]batchv1.Job(nil), jobs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	conds := sj.Spec.ScalingStrategy.PendingPodConditions
	var c JobCounts
	var out []Job
	for i := range sorted {
		j := &sorted[i]
		if !controlledBy(j, sj) {
			c.Ignored++
			continue
		}
		if dispatch.IsFinished(j) {
			if hasCondition(j, batchv1.JobFailed) {
				c.Failed++
			} else {
				c.Succeeded++
			}
			continue
		}
		c.Running++
		p := podsByJob[j.Name]
		job := Job{Name: j.Name, State: StateRunning, Why: whyPending(p, conds, false)}
		if dispatch.JobPending(j, p, conds) {
			c.Pending++
			job.State, job.Why = StatePending, whyPending(p, conds, true)
		}
		out = append(out, job)
	}
	return c, out
}

// outcomes are the finished Jobs of sj's current generation that sj controls, as the dispatcher feeds them to the
// failing-Jobs back-off (dispatch.CurrentOutcomes).
func outcomes(sj *v1alpha1.ScaledJob, jobs []batchv1.Job) []dispatch.JobOutcome {
	owned := make([]batchv1.Job, 0, len(jobs))
	for i := range jobs {
		if controlledBy(&jobs[i], sj) {
			owned = append(owned, jobs[i])
		}
	}
	return dispatch.CurrentOutcomes(sj, owned)
}

// whyPending describes the pods behind dispatch.IsPending's answer.
func whyPending(pods []corev1.Pod, conds []string, pending bool) string {
	if len(pods) == 0 {
		return "no pods yet"
	}
	var parts []string
	for i := range pods {
		p := &pods[i]
		if len(conds) == 0 {
			parts = append(parts, fmt.Sprintf("%s %s", p.Name, p.Status.Phase))
			continue
		}
		var cs []string
		for _, want := range conds {
			st := "missing"
			for _, pc := range p.Status.Conditions {
				if string(pc.Type) == want {
					st = string(pc.Status)
				}
			}
			cs = append(cs, want+"="+st)
		}
		parts = append(parts, fmt.Sprintf("%s %s", p.Name, strings.Join(cs, ",")))
	}
	detail := " (" + strings.Join(parts, "; ") + ")"
	switch {
	case len(conds) == 0 && pending:
		return "no pod is Running or Succeeded" + detail
	case len(conds) == 0:
		return "a pod is Running or Succeeded" + detail
	case pending:
		return fmt.Sprintf("no pod has all of pendingPodConditions [%s] True", strings.Join(conds, ", ")) + detail
	default:
		return fmt.Sprintf("a pod has all of pendingPodConditions [%s] True", strings.Join(conds, ", ")) + detail
	}
}

// controlledBy reports whether sj is j's controller; without a UID (objects not from a cluster) the label decides.
func controlledBy(j *batchv1.Job, sj *v1alpha1.ScaledJob) bool {
	if sj.UID == "" {
		return j.Labels[v1alpha1.LabelScaledJob] == sj.Name
	}
	ref := metav1.GetControllerOf(j)
	return ref != nil && ref.UID == sj.UID
}

func hasCondition(j *batchv1.Job, t batchv1.JobConditionType) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func statusOf(sj *v1alpha1.ScaledJob, name string) *v1alpha1.TriggerStatus {
	for i := range sj.Status.Triggers {
		if sj.Status.Triggers[i].Name == name {
			return &sj.Status.Triggers[i]
		}
	}
	return nil
}

func readyCondition(sj *v1alpha1.ScaledJob) *metav1.Condition {
	for i := range sj.Status.Conditions {
		if sj.Status.Conditions[i].Type == v1alpha1.ConditionReady {
			return &sj.Status.Conditions[i]
		}
	}
	return nil
}

func parseFloat(s string) *float64 {
	if s == "" {
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil
	}
	return &f
}

// liveStatus puts a live reading in the shape of a status entry, so both kinds of reading take one path.
func liveStatus(l dispatch.LiveReading, now time.Time) *v1alpha1.TriggerStatus {
	at := metav1.NewTime(now)
	st := &v1alpha1.TriggerStatus{Name: l.Name, SampledAt: &at}
	if l.Err != nil {
		st.LastError = l.Err.Error()
		return st
	}
	st.Backlog = strconv.FormatFloat(l.Backlog.Value, 'g', -1, 64)
	st.Target = strconv.FormatFloat(l.Backlog.Target, 'g', -1, 64)
	st.Active = l.Backlog.Active
	return st
}
