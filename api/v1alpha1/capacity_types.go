package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Values of CapacityWindow.OnClose.
const (
	// OnCloseDrain lets the Jobs running at a window's close finish; no new Job starts until the count is back
	// under the effective maxReplicaCount.
	OnCloseDrain = "drain"
	// OnCloseTerminate deletes, at a window's close, the unfinished Jobs above the new effective maxReplicaCount
	// (pending ones first, then the newest); in message mode their messages are handed back at once, without
	// counting an attempt.
	OnCloseTerminate = "terminate"
)

// MaxWindowReplicaCount is the largest maxReplicaCount or minReplicaCount a capacity window accepts: far above the
// 150000 pods Kubernetes is tested with per cluster, so it refuses only plain mistakes.
const MaxWindowReplicaCount = 1000000

// AnnotationWindowOccurrence is set on the Jobs created for a runsPerWindow occurrence: the occurrence's start
// (UTC, RFC 3339). They are counted so a lost status write never makes the occurrence run twice.
const AnnotationWindowOccurrence = "kubedispatch.io/window-occurrence"

// Keys of the cron trigger that only this project has (KEDA's cron trigger does not know them).
const (
	// CronRunsPerWindow makes a cron trigger create exactly that many Jobs per window occurrence, in total.
	CronRunsPerWindow = "runsPerWindow"
	// CronStartingDeadlineSeconds bounds how late (after the window's start) a runsPerWindow occurrence may
	// still be served after downtime.
	CronStartingDeadlineSeconds = "startingDeadlineSeconds"
)

// CapacityWindow is a time window, given as start and end cron expressions in a time zone, in which the
// ScaledJob's minReplicaCount and maxReplicaCount are replaced by the window's.
//
// +kubebuilder:validation:XValidation:rule="self.start.trim() != self.end.trim()",message="start and end must differ: a window that opens and closes at the same moment is never open",fieldPath=".end"
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicaCount) || self.minReplicaCount <= self.maxReplicaCount",message="minReplicaCount must not exceed maxReplicaCount",fieldPath=".minReplicaCount"
type CapacityWindow struct {
	// name identifies the window in status, events, decisions and metrics: lower-case letters, digits and '-',
	// at most 63 characters, unique within the ScaledJob.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// timezone is the IANA time zone of start and end, such as "Europe/Berlin" or "Etc/UTC".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Timezone string `json:"timezone"`

	// start is the five-field cron expression (minute hour day-of-month month day-of-week) at which the window
	// opens, as in the cron trigger.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Start string `json:"start"`

	// end is the five-field cron expression at which the window closes.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	End string `json:"end"`

	// maxReplicaCount replaces spec.maxReplicaCount while the window is open (it may be lower or higher). With
	// several windows open, the largest applies.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	MaxReplicaCount int32 `json:"maxReplicaCount"`

	// minReplicaCount, when set, replaces spec.minReplicaCount while the window is open: Jobs kept running even
	// with no pending work (pre-warm). With several windows open, the largest applies. Unset keeps the spec's.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	MinReplicaCount *int32 `json:"minReplicaCount,omitempty"`

	// onClose is what happens at the window's close to the Jobs above the capacity that applies after it:
	// "drain" (default) lets them finish; "terminate" deletes them (pending Jobs first, then the newest) and, in
	// message mode, hands their messages back at once without counting an attempt.
	// +optional
	// +kubebuilder:default=drain
	// +kubebuilder:validation:Enum=drain;terminate
	OnClose string `json:"onClose,omitempty"`
}

// CapacityStatus is the capacity that applies now.
type CapacityStatus struct {
	// maxReplicaCount is the effective maxReplicaCount: the spec's, or the largest of the open windows'.
	MaxReplicaCount int32 `json:"maxReplicaCount"`

	// minReplicaCount is the effective minReplicaCount.
	MinReplicaCount int32 `json:"minReplicaCount"`

	// maxFrom names the window that set maxReplicaCount; empty when the spec's value applies.
	// +optional
	MaxFrom string `json:"maxFrom,omitempty"`

	// minFrom names the window that set minReplicaCount; empty when the spec's value applies.
	// +optional
	MinFrom string `json:"minFrom,omitempty"`

	// openWindows lists the capacity windows open now, in spec order.
	// +optional
	// +listType=atomic
	OpenWindows []string `json:"openWindows,omitempty"`
}

// WindowChange is the next opening or closing of a capacity window.
type WindowChange struct {
	// time of the change.
	Time metav1.Time `json:"time"`

	// window that opens or closes.
	Window string `json:"window"`

	// change is "opens" or "closes".
	Change string `json:"change"`

	// description says what changes then, such as "window nightly-etl closes: max 200 -> 10".
	// +optional
	Description string `json:"description,omitempty"`
}

// WindowRun records the window occurrence a runsPerWindow cron trigger served last, so a restart never serves it
// twice.
type WindowRun struct {
	// trigger is the cron trigger's name (or "<type>[<index>]").
	Trigger string `json:"trigger"`

	// occurrence is when the window occurrence opened (its start).
	Occurrence metav1.Time `json:"occurrence"`

	// created is how many Jobs were created for the occurrence.
	// +optional
	Created int32 `json:"created"`

	// missed is true when the occurrence was not served: it began more than startingDeadlineSeconds before the
	// dispatcher could serve it, or closed before it could.
	// +optional
	Missed bool `json:"missed,omitempty"`

	// message says what happened to the occurrence.
	// +optional
	Message string `json:"message,omitempty"`
}
