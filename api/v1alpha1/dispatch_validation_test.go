package v1alpha1

import (
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func withDispatch(d Dispatch) func(*ScaledJob) {
	return func(sj *ScaledJob) { sj.Spec.Dispatch = &d }
}

func param(from ParameterSource, to ParameterTarget) Parameter { return Parameter{From: from, To: to} }

func TestValidateDispatch(t *testing.T) {
	message := Dispatch{Mode: ModeMessage}
	tests := map[string]struct {
		sj   *ScaledJob
		want []string // field paths with an error
	}{
		"count mode, no dispatch":   {sj: makeScaledJob()},
		"message mode on one queue": {sj: makeScaledJob(withDispatch(message))},
		"unknown mode":              {sj: makeScaledJob(withDispatch(Dispatch{Mode: "stream"})), want: []string{"spec.dispatch.mode"}},
		"maxDeliveries out of range": {sj: makeScaledJob(withDispatch(Dispatch{Mode: ModeMessage, MaxDeliveries: ptr.To[int32](0)})),
			want: []string{"spec.dispatch.maxDeliveries"}},
		"two triggers": {sj: makeScaledJob(withDispatch(message), withTriggers(
			ScaleTrigger{Type: "aws-sqs-queue"}, ScaleTrigger{Type: "aws-sqs-queue", Name: "b"})), want: []string{"spec.triggers"}},
		"message mode on a Pub/Sub subscription with a dead-letter topic": {sj: makeScaledJob(withDispatch(Dispatch{Mode: ModeMessage,
			DeadLetter: &DeadLetter{Topic: "dead"}}), withTriggers(ScaleTrigger{Type: "gcp-pubsub"}))},
		"dead-letter fields of the other queue type": {sj: makeScaledJob(withDispatch(Dispatch{Mode: ModeMessage,
			DeadLetter: &DeadLetter{Topic: "dead", QueueURL: "https://sqs/1/dlq"}}), withTriggers(ScaleTrigger{Type: "gcp-pubsub"})),
			want: []string{"spec.dispatch.deadLetter.queueURL"}},
		"cron cannot be received from": {sj: makeScaledJob(withDispatch(message), withTriggers(ScaleTrigger{Type: "cron"})),
			want: []string{"spec.triggers[0].type"}},
		"two triggers in count mode are fine": {sj: makeScaledJob(withTriggers(
			ScaleTrigger{Type: "aws-sqs-queue"}, ScaleTrigger{Type: "cron", Name: "b"}))},
		"relative mount path": {sj: makeScaledJob(withDispatch(Dispatch{Mode: ModeMessage, Payload: &Payload{MountPath: "msg"}})),
			want: []string{"spec.dispatch.payload.mountPath"}},
		"parameter with no source and two destinations": {sj: makeScaledJob(withDispatch(Dispatch{Mode: ModeMessage, Parameters: []Parameter{
			param(ParameterSource{}, ParameterTarget{Env: "A", PodLabel: "b"})}})),
			want: []string{"spec.dispatch.parameters[0].from", "spec.dispatch.parameters[0].to"}},
		"unknown metadata": {sj: makeScaledJob(withDispatch(Dispatch{Mode: ModeMessage, Parameters: []Parameter{
			param(ParameterSource{Metadata: "size"}, ParameterTarget{Env: "A"})}})), want: []string{"spec.dispatch.parameters[0].from.metadata"}},
		"invalid and reserved env names": {sj: makeScaledJob(withDispatch(Dispatch{Mode: ModeMessage, Parameters: []Parameter{
			param(ParameterSource{Attribute: "a"}, ParameterTarget{Env: "1-BAD"}),
			param(ParameterSource{Attribute: "a"}, ParameterTarget{Env: "KUBEDISPATCH_QUEUE"})}})),
			want: []string{"spec.dispatch.parameters[0].to.env", "spec.dispatch.parameters[1].to.env"}},
		"reserved label and annotation, bad label default": {sj: makeScaledJob(withDispatch(Dispatch{Mode: ModeMessage, Parameters: []Parameter{
			param(ParameterSource{Attribute: "a"}, ParameterTarget{PodLabel: "kubedispatch.io/message"}),
			param(ParameterSource{Attribute: "a"}, ParameterTarget{PodAnnotation: "kubedispatch.io/delivery"}),
			{From: ParameterSource{Attribute: "a"}, To: ParameterTarget{PodLabel: "tenant"}, Default: ptr.To("not a label value!")}}})),
			want: []string{"spec.dispatch.parameters[0].to.podLabel", "spec.dispatch.parameters[1].to.podAnnotation", "spec.dispatch.parameters[2].default"}},
		"empty json path segment": {sj: makeScaledJob(withDispatch(Dispatch{Mode: ModeMessage, Parameters: []Parameter{
			param(ParameterSource{JSON: "a..b"}, ParameterTarget{Env: "A"})}})), want: []string{"spec.dispatch.parameters[0].from.json"}},
		"arg into a container that does not exist": {sj: makeScaledJob(withDispatch(Dispatch{Mode: ModeMessage, Parameters: []Parameter{
			param(ParameterSource{Attribute: "a"}, ParameterTarget{Arg: &ArgTarget{Container: "sidecar"}})}})),
			want: []string{"spec.dispatch.parameters[0].to.arg.container"}},
		"template uses the payload volume name and mount path": {sj: makeScaledJob(withDispatch(message), func(sj *ScaledJob) {
			pod := &sj.Spec.JobTargetRef.Template.Spec
			pod.Volumes = []corev1.Volume{{Name: PayloadVolume}}
			pod.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "x", MountPath: DefaultPayloadMountPath + "/"}}
		}), want: []string{"spec.jobTargetRef.template.spec.volumes[0].name", "spec.jobTargetRef.template.spec.containers[0].volumeMounts[0].mountPath"}},
		"payload checks apply only in message mode": {sj: makeScaledJob(func(sj *ScaledJob) {
			sj.Spec.JobTargetRef.Template.Spec.Volumes = []corev1.Volume{{Name: PayloadVolume}}
		})},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, e := range tc.sj.Validate() {
				got = append(got, e.Field)
			}
			sort.Strings(got)
			sort.Strings(tc.want)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("error fields (-want +got):\n%s\nerrors: %v", diff, tc.sj.Validate())
			}
		})
	}
}
