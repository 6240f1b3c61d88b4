package v1alpha1

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

func TestValidateCapacityWindows(t *testing.T) {
	windows := field.NewPath("spec", "capacityWindows")
	triggers := field.NewPath("spec", "triggers")
	win := func(mods ...func(*CapacityWindow)) CapacityWindow {
		w := CapacityWindow{Name: "nightly", Timezone: "Etc/UTC", Start: "0 1 * * *", End: "0 5 * * *", MaxReplicaCount: 50}
		for _, m := range mods {
			m(&w)
		}
		return w
	}
	withWindows := func(ws ...CapacityWindow) func(*ScaledJob) {
		return func(sj *ScaledJob) { sj.Spec.CapacityWindows = ws }
	}
	cronRuns := ScaleTrigger{Type: "cron", Metadata: map[string]string{"timezone": "Etc/UTC", "start": "0 1 * * *", "end": "0 2 * * *", "runsPerWindow": "3"}}
	tests := map[string]struct {
		sj   *ScaledJob
		want field.ErrorList
	}{
		"a valid window": {sj: makeScaledJob(withWindows(win(), win(func(w *CapacityWindow) {
			w.Name, w.MinReplicaCount, w.OnClose = "office", ptr.To[int32](2), OnCloseTerminate
		})))},
		"start equals end, spacing ignored": {
			sj:   makeScaledJob(withWindows(win(func(w *CapacityWindow) { w.End = " 0  1 * * * " }))),
			want: field.ErrorList{field.Invalid(windows.Index(0).Child("end"), " 0  1 * * * ", "must differ from start: a window that opens and closes at the same moment is never open")},
		},
		"duplicate names": {
			sj:   makeScaledJob(withWindows(win(), win())),
			want: field.ErrorList{field.Duplicate(windows.Index(1).Child("name"), "nightly")},
		},
		"max above the maximum": {
			sj:   makeScaledJob(withWindows(win(func(w *CapacityWindow) { w.MaxReplicaCount = MaxWindowReplicaCount + 1 }))),
			want: field.ErrorList{field.Invalid(windows.Index(0).Child("maxReplicaCount"), int32(MaxWindowReplicaCount+1), "must be from 1 to 1000000")},
		},
		"min above the window's max": {
			sj:   makeScaledJob(withWindows(win(func(w *CapacityWindow) { w.MinReplicaCount = ptr.To[int32](60) }))),
			want: field.ErrorList{field.Invalid(windows.Index(0).Child("minReplicaCount"), int32(60), "must not exceed the window's maxReplicaCount (50)")},
		},
		"unknown onClose": {
			sj:   makeScaledJob(withWindows(win(func(w *CapacityWindow) { w.OnClose = "stop" }))),
			want: field.ErrorList{field.NotSupported(windows.Index(0).Child("onClose"), "stop", []string{OnCloseDrain, OnCloseTerminate})},
		},
		"runsPerWindow on an SQS trigger": {
			sj: makeScaledJob(func(sj *ScaledJob) { sj.Spec.Triggers[0].Metadata["runsPerWindow"] = "3" }),
			want: field.ErrorList{field.Forbidden(triggers.Index(0).Child("metadata", "runsPerWindow"),
				"is a key of the cron trigger only; a aws-sqs-queue trigger would ignore it")},
		},
		"runsPerWindow with another trigger": {
			sj: makeScaledJob(withTriggers(cronRuns, ScaleTrigger{Type: "aws-sqs-queue", Metadata: map[string]string{"queueURL": "q"}})),
			want: field.ErrorList{field.Forbidden(triggers.Index(0).Child("metadata", "runsPerWindow"),
				"a once-per-window batch must be the ScaledJob's only trigger (Jobs for other triggers would count against exactly runsPerWindow Jobs); put the other triggers in their own ScaledJob")},
		},
		"runsPerWindow with a minReplicaCount": {
			sj: makeScaledJob(withTriggers(cronRuns), func(sj *ScaledJob) { sj.Spec.MinReplicaCount = ptr.To[int32](1) }),
			want: field.ErrorList{field.Forbidden(triggers.Index(0).Child("metadata", "runsPerWindow"),
				"cannot be combined with spec.minReplicaCount: baseline Jobs would count against exactly runsPerWindow Jobs per window")},
		},
		"runsPerWindow alone is valid": {sj: makeScaledJob(withTriggers(cronRuns))},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.sj.Validate()); diff != "" {
				t.Errorf("Validate() (-want +got):\n%s", diff)
			}
		})
	}
}
