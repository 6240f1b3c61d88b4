package v1alpha1

import (
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types reported in ScaledJobStatus.Conditions.
const (
	// ConditionReady is True when the ScaledJob is valid and every trigger can be read.
	ConditionReady = "Ready"
	// ConditionActive is True when at least one trigger reports pending work.
	ConditionActive = "Active"
	// ConditionPaused is True when the ScaledJob carries the pause annotation.
	ConditionPaused = "Paused"
)

// Values of ScalingStrategy.Strategy.
const (
	// StrategyDefault creates backlog minus running Jobs.
	StrategyDefault = "default"
	// StrategyCustom deducts customScalingQueueLengthDeduction and a fraction of the running Jobs.
	StrategyCustom = "custom"
	// StrategyAccurate assumes running Jobs have already taken their messages off the queue.
	StrategyAccurate = "accurate"
	// StrategyEager fills every free slot up to maxReplicaCount as soon as there is any backlog.
	StrategyEager = "eager"
)

// Values of ScalingStrategy.MultipleScalersCalculation.
const (
	// CalculationMax uses the largest per-trigger result.
	CalculationMax = "max"
	// CalculationMin uses the smallest per-trigger result.
	CalculationMin = "min"
	// CalculationAvg uses the average of the per-trigger results.
	CalculationAvg = "avg"
	// CalculationSum uses the sum of the per-trigger results.
	CalculationSum = "sum"
)

// Values of Rollout.Strategy.
const (
	// RolloutGradual leaves Jobs created from an older generation of the ScaledJob alone.
	RolloutGradual = "gradual"
	// RolloutImmediate deletes Jobs created from an older generation of the ScaledJob when its spec changes.
	RolloutImmediate = "immediate"
)

// Values of Rollout.PropagationPolicy.
const (
	// PropagationForeground deletes a Job only after its pods are gone.
	PropagationForeground = "foreground"
	// PropagationBackground deletes a Job at once and lets the garbage collector remove its pods.
	PropagationBackground = "background"
)

// Values of AuthenticationRef.Kind.
const (
	// KindTriggerAuthentication refers to a TriggerAuthentication in the ScaledJob's namespace.
	KindTriggerAuthentication = "TriggerAuthentication"
	// KindClusterTriggerAuthentication refers to a cluster-scoped ClusterTriggerAuthentication.
	KindClusterTriggerAuthentication = "ClusterTriggerAuthentication"
)

// ScaledJobSpec describes the Job to run, the triggers whose pending work decides how many to run, and the limits
// that apply. Field names match KEDA's keda.sh/v1alpha1 ScaledJob, so a KEDA manifest migrates by changing its
// apiVersion.
//
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicaCount) || !has(self.maxReplicaCount) || self.minReplicaCount <= self.maxReplicaCount",message="minReplicaCount must not exceed maxReplicaCount",fieldPath=".minReplicaCount"
// +kubebuilder:validation:XValidation:rule="!has(self.dispatch) || !has(self.dispatch.mode) || self.dispatch.mode != 'message' || (size(self.triggers) == 1 && self.triggers[0].type in ['aws-sqs-queue', 'gcp-pubsub', 'azure-servicebus'])",message="dispatch.mode message needs exactly one trigger, of type aws-sqs-queue, gcp-pubsub or azure-servicebus",fieldPath=".triggers"
// +kubebuilder:validation:XValidation:rule="self.triggers.all(t, t.type == 'cron' || !has(t.metadata) || !('runsPerWindow' in t.metadata || 'startingDeadlineSeconds' in t.metadata))",message="runsPerWindow and startingDeadlineSeconds are keys of the cron trigger only",fieldPath=".triggers"
type ScaledJobSpec struct {
	// jobTargetRef is the spec of the Job to create, one Job per unit of work. It is copied unchanged into every
	// Job, except that an empty template.spec.restartPolicy becomes OnFailure. The pod template gets the label
	// kubedispatch.io/scaledjob=<name of this ScaledJob>. Its fields are those of a Job's spec: see
	// `kubectl explain job.spec`.
	// +required
	JobTargetRef batchv1.JobSpec `json:"jobTargetRef"`

	// pollingInterval is how often, in seconds, the triggers are read and Jobs are created. Defaults to 30.
	// +optional
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=1
	PollingInterval *int32 `json:"pollingInterval,omitempty"`

	// successfulJobsHistoryLimit is how many Jobs that completed successfully are kept; older ones are deleted.
	// Defaults to 100.
	// +optional
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=0
	SuccessfulJobsHistoryLimit *int32 `json:"successfulJobsHistoryLimit,omitempty"`

	// failedJobsHistoryLimit is how many failed Jobs are kept; the ones that failed longest ago are deleted first.
	// Defaults to 100.
	// +optional
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=0
	FailedJobsHistoryLimit *int32 `json:"failedJobsHistoryLimit,omitempty"`

	// minReplicaCount is the number of unfinished Jobs kept at all times, even with no pending work. It must not
	// exceed maxReplicaCount, nor 1000000 (MaxMinReplicaCount): a baseline of always-running Jobs beyond that is
	// a mistake (Kubernetes is tested up to 150000 pods per cluster), such as 2147483647 meant as "unbounded".
	// Defaults to 0.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	MinReplicaCount *int32 `json:"minReplicaCount,omitempty"`

	// maxReplicaCount is the most unfinished Jobs this ScaledJob may have at once. Defaults to 100. Any int32 is
	// accepted (KEDA manifests often use a huge value to mean "no cap"): Jobs are created at most
	// --max-creates-per-tick per tick, so a huge cap costs no memory.
	// +optional
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=1
	MaxReplicaCount *int32 `json:"maxReplicaCount,omitempty"`

	// rollout says what happens to existing Jobs when this spec changes.
	// +optional
	// +kubebuilder:default={}
	Rollout *Rollout `json:"rollout,omitempty"`

	// scalingStrategy says how pending work and running Jobs turn into a number of Jobs to create.
	// +optional
	// +kubebuilder:default={}
	ScalingStrategy ScalingStrategy `json:"scalingStrategy,omitempty"`

	// triggers are the sources of pending work (queues, cron windows). At least one is required. Trigger names,
	// when set, must be unique.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:XValidation:rule="self.all(t, !has(t.name) || t.name == '' || self.exists_one(u, has(u.name) && u.name == t.name))",message="trigger names must be unique"
	Triggers []ScaleTrigger `json:"triggers"`

	// dispatch says how pending work becomes Jobs: counted (mode count, the default, as KEDA does) or message by
	// message (mode message).
	// +optional
	// +kubebuilder:default={}
	Dispatch *Dispatch `json:"dispatch,omitempty"`

	// capacityWindows are time windows in which minReplicaCount and maxReplicaCount take the window's values
	// (an ETL queue that may use 200 Jobs at night and 10 by day). Outside every window the spec's own values
	// apply; with several windows open, the largest max and the largest min. Every trigger type and both dispatch
	// modes follow the effective values. Window names must be unique.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(w, self.exists_one(u, u.name == w.name))",message="capacity window names must be unique"
	CapacityWindows []CapacityWindow `json:"capacityWindows,omitempty"`

	// envSourceContainerName names the container of jobTargetRef.template whose environment resolves trigger
	// parameters ending in "FromEnv" and TriggerAuthentication env references. Defaults to the first container.
	// +optional
	EnvSourceContainerName string `json:"envSourceContainerName,omitempty"`
}

// Rollout says what happens to existing Jobs when the ScaledJob's spec changes.
type Rollout struct {
	// strategy is "gradual" (default): Jobs created from an older spec run to completion; or "immediate": every
	// Job created from an older spec, running or finished, is deleted when the spec changes.
	// +optional
	// +kubebuilder:default=gradual
	// +kubebuilder:validation:Enum=gradual;immediate
	Strategy string `json:"strategy,omitempty"`

	// propagationPolicy is how Jobs deleted by an immediate rollout are deleted: "background" (default) deletes
	// the Job at once and its pods afterwards; "foreground" deletes the Job only after its pods are gone.
	// +optional
	// +kubebuilder:default=background
	// +kubebuilder:validation:Enum=foreground;background
	PropagationPolicy string `json:"propagationPolicy,omitempty"`
}

// ScalingStrategy says how pending work and running Jobs turn into a number of Jobs to create.
type ScalingStrategy struct {
	// strategy is one of the following, where "work" is the pending work divided by the trigger's per-Job
	// target and rounded up:
	// "default": create work minus running Jobs; for queues whose length includes messages being handled;
	// "custom": create work minus customScalingQueueLengthDeduction minus running Jobs times
	// customScalingRunningJobPercentage;
	// "accurate": create work minus pending Jobs, within the free slots; for queues whose length excludes
	// messages already taken by a Job;
	// "eager": create up to work Jobs on every poll while free slots remain below maxReplicaCount.
	// Defaults to "default".
	// +optional
	// +kubebuilder:default=default
	// +kubebuilder:validation:Enum=default;custom;accurate;eager
	Strategy string `json:"strategy,omitempty"`

	// customScalingQueueLengthDeduction is subtracted from the number of Jobs to create. Used only by the
	// "custom" strategy. Defaults to 0.
	// +optional
	CustomScalingQueueLengthDeduction *int32 `json:"customScalingQueueLengthDeduction,omitempty"`

	// customScalingRunningJobPercentage is the fraction of running Jobs subtracted from the number of Jobs to
	// create, written as a decimal string between 0 and 1, such as "0.5". Required by the "custom" strategy.
	// +optional
	CustomScalingRunningJobPercentage string `json:"customScalingRunningJobPercentage,omitempty"`

	// pendingPodConditions lists pod condition types (such as "Ready" or "PodScheduled"). An unfinished Job counts
	// as pending until one of its pods has all of them True. When empty, a Job is pending until one of its pods is
	// Running or Succeeded. Entries must be unique.
	// +optional
	// +listType=atomic
	PendingPodConditions []string `json:"pendingPodConditions,omitempty"`

	// multipleScalersCalculation combines the results of several triggers: "max" (default), "min", "avg" or
	// "sum".
	// +optional
	// +kubebuilder:default=max
	// +kubebuilder:validation:Enum=max;min;avg;sum
	MultipleScalersCalculation string `json:"multipleScalersCalculation,omitempty"`
}

// ScaleTrigger is one source of pending work.
type ScaleTrigger struct {
	// type is the trigger type, such as "aws-sqs-queue", "gcp-pubsub", "azure-servicebus" or "cron".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Type string `json:"type"`

	// name identifies the trigger in status, events and metrics. Must be unique within the ScaledJob when set, and
	// must not end in "[<number>]": an unnamed trigger is called "<type>[<index>]" (such as "aws-sqs-queue[0]").
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="!self.matches(r'\\[[0-9]+\\]$')",message="must not end in [<number>]: that form is the name of an unnamed trigger (<type>[<index>]) in status, events and metrics"
	Name string `json:"name,omitempty"`

	// metadata holds the trigger type's parameters, with the same keys as KEDA's scaler of that type. At most 128
	// keys; each key at most 253 characters, each value at most 8192.
	// +optional
	// +kubebuilder:validation:MaxProperties=128
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 253 && size(self[k]) <= 8192)",message="metadata keys may have at most 253 characters, values at most 8192 characters"
	Metadata map[string]string `json:"metadata,omitempty"`

	// authenticationRef names the TriggerAuthentication or ClusterTriggerAuthentication that supplies the
	// trigger's credentials.
	// +optional
	AuthenticationRef *AuthenticationRef `json:"authenticationRef,omitempty"`

	// metricType is accepted for compatibility with KEDA manifests and must be empty: a ScaledJob always divides
	// pending work by the trigger's per-Job target.
	// +optional
	MetricType string `json:"metricType,omitempty"`

	// useCachedMetrics is accepted for compatibility with KEDA manifests and ignored.
	// +optional
	UseCachedMetrics bool `json:"useCachedMetrics,omitempty"`
}

// AuthenticationRef names a TriggerAuthentication or ClusterTriggerAuthentication.
type AuthenticationRef struct {
	// name of the TriggerAuthentication (in the ScaledJob's namespace) or ClusterTriggerAuthentication.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// kind is "TriggerAuthentication" (default) or "ClusterTriggerAuthentication".
	// +optional
	// +kubebuilder:default=TriggerAuthentication
	// +kubebuilder:validation:Enum=TriggerAuthentication;ClusterTriggerAuthentication
	Kind string `json:"kind,omitempty"`
}

// ScaledJobStatus is the observed state of a ScaledJob.
type ScaledJobStatus struct {
	// conditions are Ready (the ScaledJob is valid and its triggers can be read), Active (a trigger reports
	// pending work) and Paused (the kubedispatch.io/paused annotation stops dispatching).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// active is the number of unfinished Jobs of this ScaledJob.
	// +optional
	Active int32 `json:"active"`

	// pending is the number of unfinished Jobs whose pods are not yet running (see
	// scalingStrategy.pendingPodConditions). They are included in active.
	// +optional
	Pending int32 `json:"pending"`

	// succeeded is the number of successfully completed Jobs kept in history.
	// +optional
	Succeeded int32 `json:"succeeded"`

	// failed is the number of failed Jobs kept in history.
	// +optional
	Failed int32 `json:"failed"`

	// triggers reports, per trigger, the last reading of pending work.
	// +optional
	// +listType=atomic
	Triggers []TriggerStatus `json:"triggers,omitempty"`

	// lastActiveTime is when a trigger last reported pending work.
	// +optional
	LastActiveTime *metav1.Time `json:"lastActiveTime,omitempty"`

	// lastDispatchTime is when Jobs were last created.
	// +optional
	LastDispatchTime *metav1.Time `json:"lastDispatchTime,omitempty"`

	// lastDecision is the outcome of the last dispatch: how many Jobs were created, and why.
	// +optional
	LastDecision *Decision `json:"lastDecision,omitempty"`

	// messages reports message mode: held, acked, released and dead-lettered messages.
	// +optional
	Messages *MessageStatus `json:"messages,omitempty"`

	// capacity is the capacity that applies now: the effective minReplicaCount and maxReplicaCount and the
	// capacity window that set them.
	// +optional
	Capacity *CapacityStatus `json:"capacity,omitempty"`

	// nextWindowChange is the next opening or closing of a capacity window.
	// +optional
	NextWindowChange *WindowChange `json:"nextWindowChange,omitempty"`

	// windowRuns records, per runsPerWindow cron trigger, the window occurrence served last.
	// +optional
	// +listType=atomic
	WindowRuns []WindowRun `json:"windowRuns,omitempty"`

	// observedGeneration is the metadata.generation of the ScaledJob that this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// TriggerStatus is the last reading of one trigger.
type TriggerStatus struct {
	// name of the trigger, or "<type>[<index>]" (e.g. "aws-sqs-queue[0]") when the trigger has no name. Unique
	// within the ScaledJob.
	// +optional
	Name string `json:"name,omitempty"`

	// type of the trigger.
	// +optional
	Type string `json:"type,omitempty"`

	// backlog is the pending work the trigger reported, such as the number of visible messages.
	// +optional
	Backlog string `json:"backlog,omitempty"`

	// target is the amount of pending work one Job handles.
	// +optional
	Target string `json:"target,omitempty"`

	// active is true when the trigger reported pending work above its activation threshold.
	// +optional
	Active bool `json:"active"`

	// lastError is the error of the last reading, or empty when it succeeded.
	// +optional
	LastError string `json:"lastError,omitempty"`

	// sampledAt is when the trigger was last read.
	// +optional
	SampledAt *metav1.Time `json:"sampledAt,omitempty"`
}

// Decision is the outcome of one dispatch.
type Decision struct {
	// time of the dispatch.
	// +required
	Time metav1.Time `json:"time"`

	// jobsCreated is the number of Jobs created.
	// +optional
	JobsCreated int32 `json:"jobsCreated,omitempty"`

	// reason explains the number, for example which limit applied.
	// +optional
	Reason string `json:"reason,omitempty"`
}

// ScaledJob creates Kubernetes Jobs from pending work in queues and cron windows, one Job per unit of work, up to
// maxReplicaCount at a time. It is compatible with KEDA's ScaledJob. Its name has at most 63 characters: it is the
// value of the kubedispatch.io/scaledjob label on its Jobs and pods.
//
// +kubebuilder:object:root=true
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be no more than 63 characters: the name of a ScaledJob is the value of the label kubedispatch.io/scaledjob on its Jobs and pods, and label values are limited to 63 characters"
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=ksj,categories=kubedispatch
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.dispatch.mode`
// +kubebuilder:printcolumn:name="Min",type=integer,JSONPath=`.spec.minReplicaCount`
// +kubebuilder:printcolumn:name="Max",type=integer,JSONPath=`.spec.maxReplicaCount`
// +kubebuilder:printcolumn:name="Effective-Max",type=integer,JSONPath=`.status.capacity.maxReplicaCount`,priority=1
// +kubebuilder:printcolumn:name="Window",type=string,JSONPath=`.status.capacity.maxFrom`,priority=1
// +kubebuilder:printcolumn:name="Strategy",type=string,JSONPath=`.spec.scalingStrategy.strategy`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Active",type=string,JSONPath=`.status.conditions[?(@.type=="Active")].status`
// +kubebuilder:printcolumn:name="Paused",type=string,JSONPath=`.status.conditions[?(@.type=="Paused")].status`,priority=1
// +kubebuilder:printcolumn:name="Running",type=integer,JSONPath=`.status.active`
// +kubebuilder:printcolumn:name="Pending",type=integer,JSONPath=`.status.pending`
// +kubebuilder:printcolumn:name="Succeeded",type=integer,JSONPath=`.status.succeeded`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.failed`
// +kubebuilder:printcolumn:name="Held",type=integer,JSONPath=`.status.messages.held`
// +kubebuilder:printcolumn:name="Acked",type=integer,JSONPath=`.status.messages.acked`
// +kubebuilder:printcolumn:name="Dead-Lettered",type=integer,JSONPath=`.status.messages.deadLettered`
// +kubebuilder:printcolumn:name="Oldest-Held",type=date,JSONPath=`.status.messages.oldestHeldTime`
// +kubebuilder:printcolumn:name="Last-Decision",type=string,JSONPath=`.status.lastDecision.reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ScaledJob struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired behaviour of the ScaledJob.
	// +required
	Spec ScaledJobSpec `json:"spec"`

	// status is the observed state of the ScaledJob, written by the dispatcher.
	// +optional
	Status ScaledJobStatus `json:"status,omitempty"`
}

// ScaledJobList is a list of ScaledJobs.
//
// +kubebuilder:object:root=true
type ScaledJobList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`

	// items are the ScaledJobs.
	Items []ScaledJob `json:"items"`
}
