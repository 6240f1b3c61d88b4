package jobtemplate

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
)

const (
	testQueue     = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"
	testMessageID = "6f1c2a9e-3b4d-4c5e-8f70-1a2b3c4d5e6f"
	// testKey is the first 16 hex characters of sha256(testQueue + "\x00" + testMessageID), computed with
	// Python's hashlib.
	testKey     = "77c874ff1393d02d"
	testJobName = "test-" + testKey + "-1"
	testPath    = v1alpha1.DefaultPayloadMountPath + "/body"
)

var testEnqueuedAt = time.Date(2026, 3, 4, 5, 6, 7, 890, time.FixedZone("CET", 3600))

// makeMessageScaledJob returns makeScaledJob() in message mode with one SQS trigger, changed by mods.
func makeMessageScaledJob(mods ...func(*v1alpha1.ScaledJob)) *v1alpha1.ScaledJob {
	return makeScaledJob(append([]func(*v1alpha1.ScaledJob){func(sj *v1alpha1.ScaledJob) {
		sj.Spec.Triggers = []v1alpha1.ScaleTrigger{{Type: "aws-sqs-queue"}}
		sj.Spec.Dispatch = &v1alpha1.Dispatch{Mode: v1alpha1.ModeMessage}
	}}, mods...)...)
}

// withParameters returns a mod that sets spec.dispatch.parameters.
func withParameters(prms ...v1alpha1.Parameter) func(*v1alpha1.ScaledJob) {
	return func(sj *v1alpha1.ScaledJob) { sj.Spec.Dispatch.Parameters = prms }
}

// makeMessage returns the first delivery of message testMessageID of testQueue, with a JSON body and one
// attribute, changed by mods.
func makeMessage(mods ...func(*MessageInfo)) MessageInfo {
	m := MessageInfo{
		ID:         testMessageID,
		Queue:      testQueue,
		Body:       []byte(`{"customer": {"id": "c-7", "tier": 2}, "items": [{"sku": "a-1", "qty": 1.50}, {"sku": "b-2"}], "note": null}`),
		Attributes: map[string]string{"customer": "acme", "trace": "t-$(HOME)"},
		EnqueuedAt: testEnqueuedAt,
		Attempt:    1,
	}
	for _, mod := range mods {
		mod(&m)
	}
	return m
}

// messageEnvVars is what BuildMessage adds to every container for makeMessage() at the default mount path.
func messageEnvVars() []corev1.EnvVar {
	return []corev1.EnvVar{
		{Name: "KUBEDISPATCH_MESSAGE_ID", Value: testMessageID},
		{Name: "KUBEDISPATCH_MESSAGE_PATH", Value: testPath},
		{Name: "KUBEDISPATCH_DELIVERY", Value: "1"},
		{Name: "KUBEDISPATCH_QUEUE", Value: testQueue},
		{Name: "KUBEDISPATCH_ENQUEUED_AT", Value: "2026-03-04T04:06:07Z"},
	}
}

func messageMount() corev1.VolumeMount {
	return corev1.VolumeMount{Name: "kubedispatch-message", MountPath: v1alpha1.DefaultPayloadMountPath, ReadOnly: true}
}

// makeMessageJob returns the Job BuildMessage makes from makeMessageScaledJob() and makeMessage(), changed by mods.
func makeMessageJob(mods ...func(*batchv1.Job)) *batchv1.Job {
	annotations := func(extra map[string]string) map[string]string {
		a := map[string]string{
			"kubedispatch.io/message-id":  testMessageID,
			"kubedispatch.io/queue":       testQueue,
			"kubedispatch.io/delivery":    "1",
			"kubedispatch.io/enqueued-at": "2026-03-04T04:06:07Z",
		}
		for k, v := range extra {
			a[k] = v
		}
		return a
	}
	job := makeJob(testJobName, func(j *batchv1.Job) {
		j.Labels["kubedispatch.io/message"] = testKey
		j.Annotations = annotations(map[string]string{"kubedispatch.io/generation": "0"})
		t := &j.Spec.Template
		t.Labels["kubedispatch.io/message"] = testKey
		t.Annotations = annotations(nil)
		t.Spec.Volumes = []corev1.Volume{{
			Name: "kubedispatch-message",
			VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName:  testJobName,
				Items:       []corev1.KeyToPath{{Key: "body", Path: "body"}},
				DefaultMode: ptr.To[int32](0o444),
			}},
		}}
		t.Spec.Containers[0].Env = messageEnvVars()
		t.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{messageMount()}
	})
	for _, m := range mods {
		m(job)
	}
	return job
}

// makeSecret returns the Secret BuildMessage makes for makeMessageScaledJob() and a message with body.
func makeSecret(body string) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      testJobName,
			Namespace: "test",
			Labels:    map[string]string{"kubedispatch.io/scaledjob": "test", "kubedispatch.io/message": testKey},
		},
		Immutable: ptr.To(true),
		Data:      map[string][]byte{"body": []byte(body)},
		Type:      corev1.SecretTypeOpaque,
	}
}

func TestMessageKey(t *testing.T) {
	tests := map[string]struct {
		queue, id string
		want      string
	}{
		"known value": {queue: testQueue, id: testMessageID, want: testKey},
		// Guards against a key that changes between releases: running Jobs would no longer match their messages.
		"empty queue and id": {queue: "", id: "", want: "6e340b9cffb37a98"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := MessageKey(tc.queue, tc.id)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("MessageKey() mismatch (-want +got):\n%s", diff)
			}
			if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(got) {
				t.Errorf("MessageKey() = %q, want 16 lowercase hex characters", got)
			}
			if errs := validation.IsValidLabelValue(got); len(errs) != 0 {
				t.Errorf("MessageKey() = %q is not a valid label value: %v", got, errs)
			}
			if again := MessageKey(tc.queue, tc.id); again != got {
				t.Errorf("MessageKey() is not stable: %q then %q", got, again)
			}
		})
	}
}

func TestMessageKeyDiffers(t *testing.T) {
	tests := map[string]struct{ queue, id string }{
		"another id":    {queue: testQueue, id: "6f1c2a9e-3b4d-4c5e-8f70-1a2b3c4d5e70"},
		"another queue": {queue: "https://sqs.eu-west-1.amazonaws.com/123456789012/invoices", id: testMessageID},
		// Without the separator, queue "…orders" + id "X" and queue "…order" + id "sX" would collide.
		"the boundary between queue and id moves": {queue: strings.TrimSuffix(testQueue, "s"), id: "s" + testMessageID},
	}
	base := MessageKey(testQueue, testMessageID)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := MessageKey(tc.queue, tc.id); got == base {
				t.Errorf("MessageKey(%q, %q) = %q, the same as for %q, %q", tc.queue, tc.id, got, testQueue, testMessageID)
			}
		})
	}
}

func TestMessageJobName(t *testing.T) {
	long := strings.Repeat("a", 70)
	tests := map[string]struct {
		scaledJob   string
		completions int32 // > 0: an Indexed Job with that many completions
		attempt     int32
		want        string
	}{
		"short name, attempt 1": {
			scaledJob: "pdf", attempt: 1, want: "pdf-" + testKey + "-1",
		},
		"63-character ScaledJob name": {
			scaledJob: strings.Repeat("b", 63), attempt: 3, want: strings.Repeat("b", 44) + "-" + testKey + "-3",
		},
		"Indexed Job with 10 completions keeps room for the pod hostname's -9": {
			scaledJob: long, completions: 10, attempt: 1, want: long[:42] + "-" + testKey + "-1",
		},
		"Indexed Job with 1000 completions keeps room for -999": {
			scaledJob: long, completions: 1000, attempt: 100, want: long[:38] + "-" + testKey + "-100",
		},
		"short name, attempt 100": {
			scaledJob: "pdf", attempt: 100, want: "pdf-" + testKey + "-100",
		},
		"44 characters fit exactly with attempt 1": {
			scaledJob: strings.Repeat("a", 44), attempt: 1, want: strings.Repeat("a", 44) + "-" + testKey + "-1",
		},
		"45 characters are cut to 44 with attempt 1": {
			scaledJob: strings.Repeat("a", 45), attempt: 1, want: strings.Repeat("a", 44) + "-" + testKey + "-1",
		},
		"long name, attempt 1": {
			scaledJob: long, attempt: 1, want: long[:44] + "-" + testKey + "-1",
		},
		"long name, attempt 100 leaves less of the name": {
			scaledJob: long, attempt: 100, want: long[:42] + "-" + testKey + "-100",
		},
		"a cut that ends in '-' or '.' drops them": {
			scaledJob: strings.Repeat("a", 41) + "-.-b-long-tail", attempt: 1,
			want: strings.Repeat("a", 41) + "-" + testKey + "-1",
		},
		"a cut that ends in '-' drops it with attempt 100": {
			scaledJob: strings.Repeat("a", 41) + "-bcdefgh", attempt: 100,
			want: strings.Repeat("a", 41) + "-" + testKey + "-100",
		},
		"253-character ScaledJob name": {
			scaledJob: strings.Repeat("pdf-renderer-", 19) + "abcdef", attempt: 100,
			want: "pdf-renderer-pdf-renderer-pdf-renderer-pdf-" + testKey + "-100",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sj := makeMessageScaledJob(func(sj *v1alpha1.ScaledJob) {
				sj.Name = tc.scaledJob
				if tc.completions > 0 {
					sj.Spec.JobTargetRef.CompletionMode = ptr.To(batchv1.IndexedCompletion)
					sj.Spec.JobTargetRef.Completions = ptr.To(tc.completions)
				}
			})
			got := MessageJobName(sj, testKey, tc.attempt)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("MessageJobName() mismatch (-want +got):\n%s", diff)
			}
			if len(got) > MaxNameLength {
				t.Errorf("MessageJobName() = %q is %d characters, want at most %d", got, len(got), MaxNameLength)
			}
			host := got
			if tc.completions > 0 {
				host = fmt.Sprintf("%s-%d", got, tc.completions-1)
			}
			if errs := validation.IsDNS1123Label(host); len(errs) != 0 {
				t.Errorf("MessageJobName() = %q gives the pod hostname %q, not a DNS-1123 label: %v", got, host, errs)
			}
		})
	}
}

func TestBuildMessage(t *testing.T) {
	tests := map[string]struct {
		sj         *v1alpha1.ScaledJob
		m          MessageInfo
		want       *batchv1.Job
		wantSecret *corev1.Secret
	}{
		"minimal": {
			sj:         makeMessageScaledJob(),
			m:          makeMessage(),
			want:       makeMessageJob(),
			wantSecret: makeSecret(string(makeMessage().Body)),
		},
		"unknown enqueue time: no enqueued-at annotation or variable": {
			sj: makeMessageScaledJob(),
			m:  makeMessage(func(m *MessageInfo) { m.EnqueuedAt = time.Time{} }),
			want: makeMessageJob(func(j *batchv1.Job) {
				delete(j.Annotations, "kubedispatch.io/enqueued-at")
				delete(j.Spec.Template.Annotations, "kubedispatch.io/enqueued-at")
				j.Spec.Template.Spec.Containers[0].Env = messageEnvVars()[:4]
			}),
			wantSecret: makeSecret(string(makeMessage().Body)),
		},
		"third attempt: its own name, same message label": {
			sj: makeMessageScaledJob(),
			m:  makeMessage(func(m *MessageInfo) { m.Attempt = 3 }),
			want: makeMessageJob(func(j *batchv1.Job) {
				name := "test-" + testKey + "-3"
				j.Name = name
				j.Annotations["kubedispatch.io/delivery"] = "3"
				j.Spec.Template.Annotations["kubedispatch.io/delivery"] = "3"
				j.Spec.Template.Spec.Volumes[0].Secret.SecretName = name
				j.Spec.Template.Spec.Containers[0].Env[2].Value = "3"
			}),
			wantSecret: func() *corev1.Secret {
				s := makeSecret(string(makeMessage().Body))
				s.Name = "test-" + testKey + "-3"
				return s
			}(),
		},
		"empty body": {
			sj:         makeMessageScaledJob(),
			m:          makeMessage(func(m *MessageInfo) { m.Body = nil }),
			want:       makeMessageJob(),
			wantSecret: makeSecret(""),
		},
		"env, volume and mount in every container and init container; template volumes and mounts kept": {
			sj: makeMessageScaledJob(func(sj *v1alpha1.ScaledJob) {
				ps := &sj.Spec.JobTargetRef.Template.Spec
				ps.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
				ps.InitContainers = []corev1.Container{
					{Name: "fetch", Image: "example.com/fetch:1"},
					{Name: "proxy", Image: "example.com/proxy:1", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)},
				}
				ps.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}
				ps.Containers = append(ps.Containers, corev1.Container{Name: "uploader", Image: "example.com/uploader:1"})
			}),
			m: makeMessage(),
			want: makeMessageJob(func(j *batchv1.Job) {
				ps := &j.Spec.Template.Spec
				ps.Volumes = append([]corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}, ps.Volumes...)
				ps.InitContainers = []corev1.Container{
					{Name: "fetch", Image: "example.com/fetch:1", Env: messageEnvVars(), VolumeMounts: []corev1.VolumeMount{messageMount()}},
					{Name: "proxy", Image: "example.com/proxy:1", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
						Env: messageEnvVars(), VolumeMounts: []corev1.VolumeMount{messageMount()}},
				}
				ps.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}, messageMount()}
				ps.Containers = append(ps.Containers, corev1.Container{
					Name: "uploader", Image: "example.com/uploader:1", Env: messageEnvVars(), VolumeMounts: []corev1.VolumeMount{messageMount()},
				})
			}),
			wantSecret: makeSecret(string(makeMessage().Body)),
		},
		"template variables of the same name are replaced where they stand, duplicates dropped": {
			sj: makeMessageScaledJob(func(sj *v1alpha1.ScaledJob) {
				sj.Spec.JobTargetRef.Template.Spec.Containers[0].Env = []corev1.EnvVar{
					{Name: "A", Value: "a"},
					{Name: "KUBEDISPATCH_QUEUE", Value: "placeholder"},
					{Name: "QUEUE_COPY", Value: "$(KUBEDISPATCH_QUEUE)"},
					{Name: "KUBEDISPATCH_MESSAGE_ID", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "KUBEDISPATCH_QUEUE", Value: "duplicate"},
				}
			}),
			m: makeMessage(),
			want: makeMessageJob(func(j *batchv1.Job) {
				e := messageEnvVars()
				j.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{
					{Name: "A", Value: "a"},
					e[3], // KUBEDISPATCH_QUEUE
					{Name: "QUEUE_COPY", Value: "$(KUBEDISPATCH_QUEUE)"},
					e[0], // KUBEDISPATCH_MESSAGE_ID
					e[1], e[2], e[4],
				}
			}),
			wantSecret: makeSecret(string(makeMessage().Body)),
		},
		"custom payload mount path": {
			sj: makeMessageScaledJob(func(sj *v1alpha1.ScaledJob) {
				sj.Spec.Dispatch.Payload = &v1alpha1.Payload{MountPath: "/in"}
			}),
			m: makeMessage(),
			want: makeMessageJob(func(j *batchv1.Job) {
				c := &j.Spec.Template.Spec.Containers[0]
				c.Env[1].Value = "/in/body"
				c.VolumeMounts[0].MountPath = "/in"
			}),
			wantSecret: makeSecret(string(makeMessage().Body)),
		},
		"template labels and annotations are kept; message annotations and label win": {
			sj: makeMessageScaledJob(func(sj *v1alpha1.ScaledJob) {
				sj.Labels = map[string]string{"kubedispatch.io/message": "stale", "team": "pdf"}
				sj.Spec.JobTargetRef.Template.Labels = map[string]string{"app": "pdf", "kubedispatch.io/message": "stale"}
				sj.Spec.JobTargetRef.Template.Annotations = map[string]string{"a": "b", "kubedispatch.io/delivery": "9"}
			}),
			m: makeMessage(),
			want: makeMessageJob(func(j *batchv1.Job) {
				j.Labels["team"] = "pdf"
				j.Spec.Template.Labels["app"] = "pdf"
				j.Spec.Template.Annotations["a"] = "b"
			}),
			wantSecret: makeSecret(string(makeMessage().Body)),
		},
		"parameters: every destination, after the KUBEDISPATCH_ variables": {
			sj: makeMessageScaledJob(func(sj *v1alpha1.ScaledJob) {
				ps := &sj.Spec.JobTargetRef.Template.Spec
				ps.InitContainers = []corev1.Container{{Name: "fetch", Image: "example.com/fetch:1"}}
				ps.Containers[0].Args = []string{"--render"}
				ps.Containers[0].Env = []corev1.EnvVar{{Name: "CUSTOMER", Value: "template"}}
				ps.Containers = append(ps.Containers, corev1.Container{Name: "uploader", Image: "example.com/uploader:1"})
			}, withParameters(
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{Attribute: "customer"}, To: v1alpha1.ParameterTarget{Env: "CUSTOMER"}},
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{JSON: "customer.id"}, To: v1alpha1.ParameterTarget{PodAnnotation: "example.com/customer-id"}},
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{JSON: "customer.tier"}, To: v1alpha1.ParameterTarget{PodLabel: "tier"}},
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{Metadata: "deliveryAttempt"}, To: v1alpha1.ParameterTarget{Arg: &v1alpha1.ArgTarget{Prefix: "--attempt="}}},
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{JSON: "items.1.sku"}, To: v1alpha1.ParameterTarget{Arg: &v1alpha1.ArgTarget{Container: "uploader"}}},
			)),
			m: makeMessage(),
			want: makeMessageJob(func(j *batchv1.Job) {
				t := &j.Spec.Template
				t.Annotations["example.com/customer-id"] = "c-7"
				t.Labels["tier"] = "2"
				withCustomer := append(messageEnvVars(), corev1.EnvVar{Name: "CUSTOMER", Value: "acme"})
				t.Spec.InitContainers = []corev1.Container{{
					Name: "fetch", Image: "example.com/fetch:1", Env: withCustomer, VolumeMounts: []corev1.VolumeMount{messageMount()},
				}}
				c := &t.Spec.Containers[0]
				c.Args = []string{"--render", "--attempt=1"}
				c.Env = append([]corev1.EnvVar{{Name: "CUSTOMER", Value: "acme"}}, messageEnvVars()...)
				t.Spec.Containers = append(t.Spec.Containers, corev1.Container{
					Name: "uploader", Image: "example.com/uploader:1", Args: []string{"b-2"},
					Env: withCustomer, VolumeMounts: []corev1.VolumeMount{messageMount()},
				})
			}),
			wantSecret: makeSecret(string(makeMessage().Body)),
		},
		"parameters: defaults for missing values": {
			sj: makeMessageScaledJob(withParameters(
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{Attribute: "region"}, To: v1alpha1.ParameterTarget{Env: "REGION"}, Default: ptr.To("eu")},
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{JSON: "note"}, To: v1alpha1.ParameterTarget{PodLabel: "note"}, Default: ptr.To("")},
			)),
			m: makeMessage(),
			want: makeMessageJob(func(j *batchv1.Job) {
				t := &j.Spec.Template
				t.Labels["note"] = ""
				t.Spec.Containers[0].Env = append(messageEnvVars(), corev1.EnvVar{Name: "REGION", Value: "eu"})
			}),
			wantSecret: makeSecret(string(makeMessage().Body)),
		},
		"'$' in env values and args is escaped from $(VAR) expansion": {
			sj: makeMessageScaledJob(withParameters(
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{Attribute: "trace"}, To: v1alpha1.ParameterTarget{Env: "TRACE"}},
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{Attribute: "trace"}, To: v1alpha1.ParameterTarget{Arg: &v1alpha1.ArgTarget{Prefix: "--trace=$"}}},
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{Attribute: "trace"}, To: v1alpha1.ParameterTarget{PodAnnotation: "trace"}},
			)),
			m: makeMessage(),
			want: makeMessageJob(func(j *batchv1.Job) {
				t := &j.Spec.Template
				t.Annotations["trace"] = "t-$(HOME)"
				t.Spec.Containers[0].Env = append(messageEnvVars(), corev1.EnvVar{Name: "TRACE", Value: "t-$$(HOME)"})
				t.Spec.Containers[0].Args = []string{"--trace=$$t-$$(HOME)"}
			}),
			wantSecret: makeSecret(string(makeMessage().Body)),
		},
		"a later parameter with the same destination wins": {
			sj: makeMessageScaledJob(withParameters(
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{Attribute: "customer"}, To: v1alpha1.ParameterTarget{Env: "X"}},
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{Metadata: "queue"}, To: v1alpha1.ParameterTarget{Env: "X"}},
			)),
			m: makeMessage(),
			want: makeMessageJob(func(j *batchv1.Job) {
				j.Spec.Template.Spec.Containers[0].Env = append(messageEnvVars(), corev1.EnvVar{Name: "X", Value: testQueue})
			}),
			wantSecret: makeSecret(string(makeMessage().Body)),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			job, secret, err := BuildMessage(tc.sj, tc.m)
			if err != nil {
				t.Fatalf("BuildMessage() error = %v", err)
			}
			if diff := cmp.Diff(tc.want, job); diff != "" {
				t.Errorf("BuildMessage() Job mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantSecret, secret); diff != "" {
				t.Errorf("BuildMessage() Secret mismatch (-want +got):\n%s", diff)
			}
			again, againSecret, err := BuildMessage(tc.sj, tc.m)
			if err != nil {
				t.Fatalf("BuildMessage() second call error = %v", err)
			}
			if diff := cmp.Diff(job, again); diff != "" {
				t.Errorf("BuildMessage() is not deterministic (-first +second):\n%s", diff)
			}
			if diff := cmp.Diff(secret, againSecret); diff != "" {
				t.Errorf("BuildMessage() Secret is not deterministic (-first +second):\n%s", diff)
			}
		})
	}
}

func TestBuildMessagePayloadSize(t *testing.T) {
	tests := map[string]struct {
		size    int
		wantErr error
	}{
		"exactly MaxPayloadBytes is accepted": {size: MaxPayloadBytes},
		"MaxPayloadBytes+1 is refused":        {size: MaxPayloadBytes + 1, wantErr: ErrPayloadTooLarge},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			body := make([]byte, tc.size)
			_, secret, err := BuildMessage(makeMessageScaledJob(), makeMessage(func(m *MessageInfo) { m.Body = body }))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("BuildMessage() error = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				want := "building message Job for ScaledJob test/test: message body is too large for a Secret: " +
					`the body of message "` + testMessageID + `" is 1048577 bytes, the limit is 1048576`
				if err.Error() != want {
					t.Errorf("BuildMessage() error = %q, want %q", err, want)
				}
				return
			}
			if got := len(secret.Data["body"]); got != tc.size {
				t.Errorf("Secret body is %d bytes, want %d", got, tc.size)
			}
		})
	}
}

func TestBuildMessageErrors(t *testing.T) {
	tests := map[string]struct {
		sj *v1alpha1.ScaledJob
		m  MessageInfo
		// want is the whole error text.
		want string
		// wantIs, when set, must match with errors.Is.
		wantIs error
		// wantParameter, when >= 0, is the index of the *ParameterError the error must wrap.
		wantParameter int
		// wantField, when set, is the field of the *field.Error the error must wrap.
		wantField string
	}{
		"no containers": {
			sj:            makeMessageScaledJob(func(sj *v1alpha1.ScaledJob) { sj.Spec.JobTargetRef.Template.Spec.Containers = nil }),
			m:             makeMessage(),
			want:          "building job for ScaledJob test/test: spec.jobTargetRef.template.spec.containers: at least one container is required",
			wantIs:        ErrNoContainers,
			wantParameter: -1,
		},
		"attempt 0": {
			sj:            makeMessageScaledJob(),
			m:             makeMessage(func(m *MessageInfo) { m.Attempt = 0 }),
			want:          `building message Job for ScaledJob test/test: attempt 0 of message "` + testMessageID + `" is less than 1`,
			wantParameter: -1,
		},
		"volume name clash": {
			sj: makeMessageScaledJob(func(sj *v1alpha1.ScaledJob) {
				sj.Spec.JobTargetRef.Template.Spec.Volumes = []corev1.Volume{
					{Name: "scratch"},
					{Name: "kubedispatch-message"},
				}
			}),
			m: makeMessage(),
			want: `building message Job for ScaledJob test/test: spec.jobTargetRef.template.spec.volumes[1].name: ` +
				`Invalid value: "kubedispatch-message": is reserved for the message body volume of message mode; rename the volume`,
			wantParameter: -1,
			wantField:     "spec.jobTargetRef.template.spec.volumes[1].name",
		},
		"mount path clash in a container": {
			sj: makeMessageScaledJob(func(sj *v1alpha1.ScaledJob) {
				c := &sj.Spec.JobTargetRef.Template.Spec.Containers[0]
				c.VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}, {Name: "data", MountPath: v1alpha1.DefaultPayloadMountPath + "/"}}
			}),
			m: makeMessage(),
			want: `building message Job for ScaledJob test/test: spec.jobTargetRef.template.spec.containers[0].volumeMounts[1].mountPath: ` +
				`Invalid value: "/var/run/kubedispatch/message/": is where message mode mounts the message body (spec.dispatch.payload.mountPath); ` +
				`mount this volume elsewhere or set spec.dispatch.payload.mountPath to another directory`,
			wantParameter: -1,
			wantField:     "spec.jobTargetRef.template.spec.containers[0].volumeMounts[1].mountPath",
		},
		"mount path clash in an init container, custom mount path": {
			sj: makeMessageScaledJob(func(sj *v1alpha1.ScaledJob) {
				sj.Spec.Dispatch.Payload = &v1alpha1.Payload{MountPath: "/in"}
				sj.Spec.JobTargetRef.Template.Spec.InitContainers = []corev1.Container{
					{Name: "fetch", VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/in"}}},
				}
			}),
			m: makeMessage(),
			want: `building message Job for ScaledJob test/test: spec.jobTargetRef.template.spec.initContainers[0].volumeMounts[0].mountPath: ` +
				`Invalid value: "/in": is where message mode mounts the message body (spec.dispatch.payload.mountPath); ` +
				`mount this volume elsewhere or set spec.dispatch.payload.mountPath to another directory`,
			wantParameter: -1,
			wantField:     "spec.jobTargetRef.template.spec.initContainers[0].volumeMounts[0].mountPath",
		},
		"missing attribute without default": {
			sj: makeMessageScaledJob(withParameters(
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{Attribute: "customer"}, To: v1alpha1.ParameterTarget{Env: "CUSTOMER"}},
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{Attribute: "region"}, To: v1alpha1.ParameterTarget{Env: "REGION"}},
			)),
			m: makeMessage(),
			want: `building message Job for ScaledJob test/test: spec.dispatch.parameters[1]: ` +
				`attribute "region" is missing and the parameter has no default`,
			wantParameter: 1,
		},
		"body not JSON": {
			sj: makeMessageScaledJob(withParameters(
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{JSON: "customer.id"}, To: v1alpha1.ParameterTarget{Env: "CUSTOMER"}},
			)),
			m: makeMessage(func(m *MessageInfo) { m.Body = []byte("customer=c-7") }),
			want: `building message Job for ScaledJob test/test: spec.dispatch.parameters[0]: ` +
				`the message body is not JSON, so json path "customer.id" is missing and the parameter has no default`,
			wantParameter: 0,
		},
		"invalid label value": {
			sj: makeMessageScaledJob(withParameters(
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{Metadata: "queue"}, To: v1alpha1.ParameterTarget{PodLabel: "queue"}},
			)),
			m: makeMessage(),
			want: `building message Job for ScaledJob test/test: spec.dispatch.parameters[0]: to.podLabel queue: "` + testQueue +
				`" is not a valid label value: ` + strings.Join(validation.IsValidLabelValue(testQueue), "; "),
			wantParameter: 0,
		},
		"label value too long": {
			sj: makeMessageScaledJob(withParameters(
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{Attribute: "long"}, To: v1alpha1.ParameterTarget{PodLabel: "long"}},
			)),
			m: makeMessage(func(m *MessageInfo) { m.Attributes = map[string]string{"long": strings.Repeat("a", 64)} }),
			want: `building message Job for ScaledJob test/test: spec.dispatch.parameters[0]: to.podLabel long: "` + strings.Repeat("a", 64) +
				`" is not a valid label value: must be no more than 63 bytes`,
			wantParameter: 0,
		},
		"arg to a container the template does not have": {
			sj: makeMessageScaledJob(withParameters(
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{Attribute: "customer"}, To: v1alpha1.ParameterTarget{Arg: &v1alpha1.ArgTarget{Container: "sidecar"}}},
			)),
			m: makeMessage(),
			want: `building message Job for ScaledJob test/test: spec.dispatch.parameters[0]: ` +
				`to.arg.container: "sidecar" is not a container of spec.jobTargetRef.template.spec.containers`,
			wantParameter: 0,
		},
		"env the dispatcher sets": {
			sj: makeMessageScaledJob(withParameters(
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{Attribute: "customer"}, To: v1alpha1.ParameterTarget{Env: "KUBEDISPATCH_QUEUE"}},
			)),
			m:             makeMessage(),
			want:          `building message Job for ScaledJob test/test: spec.dispatch.parameters[0]: to.env: KUBEDISPATCH_QUEUE is set by the dispatcher`,
			wantParameter: 0,
		},
		"annotation the dispatcher sets": {
			sj: makeMessageScaledJob(withParameters(
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{Attribute: "customer"}, To: v1alpha1.ParameterTarget{PodAnnotation: "kubedispatch.io/message-id"}},
			)),
			m:             makeMessage(),
			want:          `building message Job for ScaledJob test/test: spec.dispatch.parameters[0]: to.podAnnotation: kubedispatch.io/message-id is set by the dispatcher`,
			wantParameter: 0,
		},
		"label the dispatcher sets": {
			sj: makeMessageScaledJob(withParameters(
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{Attribute: "customer"}, To: v1alpha1.ParameterTarget{PodLabel: "kubedispatch.io/message"}},
			)),
			m:             makeMessage(),
			want:          `building message Job for ScaledJob test/test: spec.dispatch.parameters[0]: to.podLabel: kubedispatch.io/message is set by the dispatcher`,
			wantParameter: 0,
		},
		"annotation too large": {
			sj: makeMessageScaledJob(withParameters(
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{Attribute: "big"}, To: v1alpha1.ParameterTarget{PodAnnotation: "big"}},
			)),
			m: makeMessage(func(m *MessageInfo) { m.Attributes = map[string]string{"big": strings.Repeat("x", 256*1024)} }),
			want: `building message Job for ScaledJob test/test: spec.dispatch.parameters[0]: to.podAnnotation big: a value of 262144 bytes ` +
				`makes the pod template's annotations too large (annotations size 262357 is larger than limit 262144)`,
			wantParameter: 0,
		},
		"no destination": {
			sj: makeMessageScaledJob(withParameters(
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{Attribute: "customer"}},
			)),
			m:             makeMessage(),
			want:          `building message Job for ScaledJob test/test: spec.dispatch.parameters[0]: to: exactly one of env, podAnnotation, podLabel or arg is required`,
			wantParameter: 0,
		},
		"two destinations": {
			sj: makeMessageScaledJob(withParameters(
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{Attribute: "customer"}, To: v1alpha1.ParameterTarget{Env: "A", PodLabel: "a"}},
			)),
			m:             makeMessage(),
			want:          `building message Job for ScaledJob test/test: spec.dispatch.parameters[0]: to: exactly one of env, podAnnotation, podLabel or arg is required`,
			wantParameter: 0,
		},
		"spec errors come before payload and parameter errors": {
			sj: makeMessageScaledJob(func(sj *v1alpha1.ScaledJob) {
				sj.Spec.JobTargetRef.Template.Spec.Volumes = []corev1.Volume{{Name: "kubedispatch-message"}}
			}, withParameters(
				v1alpha1.Parameter{From: v1alpha1.ParameterSource{Attribute: "region"}, To: v1alpha1.ParameterTarget{Env: "REGION"}},
			)),
			m: makeMessage(func(m *MessageInfo) { m.Body = make([]byte, MaxPayloadBytes+1) }),
			want: `building message Job for ScaledJob test/test: spec.jobTargetRef.template.spec.volumes[0].name: ` +
				`Invalid value: "kubedispatch-message": is reserved for the message body volume of message mode; rename the volume`,
			wantParameter: -1,
			wantField:     "spec.jobTargetRef.template.spec.volumes[0].name",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			job, secret, err := BuildMessage(tc.sj, tc.m)
			if err == nil {
				t.Fatalf("BuildMessage() error = nil, want %q", tc.want)
			}
			if job != nil || secret != nil {
				t.Errorf("BuildMessage() returned a Job or Secret with an error")
			}
			if err.Error() != tc.want {
				t.Errorf("BuildMessage() error =\n%q, want\n%q", err, tc.want)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("BuildMessage() error = %v, want it to wrap %v", err, tc.wantIs)
			}
			var perr *ParameterError
			switch isParam := errors.As(err, &perr); {
			case tc.wantParameter >= 0 && !isParam:
				t.Errorf("BuildMessage() error = %v, want a *ParameterError", err)
			case tc.wantParameter >= 0 && perr.Index != tc.wantParameter:
				t.Errorf("ParameterError.Index = %d, want %d", perr.Index, tc.wantParameter)
			case tc.wantParameter < 0 && isParam:
				t.Errorf("BuildMessage() error = %v, want no *ParameterError", err)
			}
			var ferr *field.Error
			switch isField := errors.As(err, &ferr); {
			case tc.wantField != "" && !isField:
				t.Errorf("BuildMessage() error = %v, want a *field.Error", err)
			case tc.wantField != "" && ferr.Field != tc.wantField:
				t.Errorf("field.Error.Field = %q, want %q", ferr.Field, tc.wantField)
			case tc.wantField == "" && isField:
				t.Errorf("BuildMessage() error = %v, want no *field.Error", err)
			}
		})
	}
}

func TestParameterValues(t *testing.T) {
	param := func(from v1alpha1.ParameterSource, def *string) v1alpha1.Parameter {
		return v1alpha1.Parameter{From: from, To: v1alpha1.ParameterTarget{Env: "X"}, Default: def}
	}
	attr := func(name string) v1alpha1.ParameterSource { return v1alpha1.ParameterSource{Attribute: name} }
	jsonPath := func(p string) v1alpha1.ParameterSource { return v1alpha1.ParameterSource{JSON: p} }
	meta := func(name string) v1alpha1.ParameterSource { return v1alpha1.ParameterSource{Metadata: name} }
	notJSON := func(m *MessageInfo) { m.Body = []byte("customer=c-7") }

	tests := map[string]struct {
		params []v1alpha1.Parameter
		mods   []func(*MessageInfo)
		want   []string
		// wantErr is the whole text of the *ParameterError; wantIndex its index.
		wantErr   string
		wantIndex int
	}{
		"no parameters":       {params: nil, want: nil},
		"attribute":           {params: []v1alpha1.Parameter{param(attr("customer"), nil)}, want: []string{"acme"}},
		"empty attribute set": {params: []v1alpha1.Parameter{param(attr("empty"), ptr.To("d"))}, mods: []func(*MessageInfo){func(m *MessageInfo) { m.Attributes["empty"] = "" }}, want: []string{""}},
		"attribute missing, default": {
			params: []v1alpha1.Parameter{param(attr("region"), ptr.To("eu"))}, want: []string{"eu"},
		},
		"attribute missing, no default": {
			params:  []v1alpha1.Parameter{param(attr("customer"), nil), param(attr("region"), nil)},
			wantErr: `spec.dispatch.parameters[1]: attribute "region" is missing and the parameter has no default`, wantIndex: 1,
		},
		"attributes nil": {
			params: []v1alpha1.Parameter{param(attr("customer"), ptr.To("none"))}, mods: []func(*MessageInfo){func(m *MessageInfo) { m.Attributes = nil }},
			want: []string{"none"},
		},
		"json string is used as is": {
			params: []v1alpha1.Parameter{param(jsonPath("customer.id"), nil)}, want: []string{"c-7"},
		},
		"json string with escapes": {
			params: []v1alpha1.Parameter{param(jsonPath("s"), nil)},
			mods:   []func(*MessageInfo){func(m *MessageInfo) { m.Body = []byte(`{"s": "a\"b\u00e9<>&"}`) }},
			want:   []string{`a"bé<>&`},
		},
		"json numbers keep their text": {
			params: []v1alpha1.Parameter{param(jsonPath("customer.tier"), nil), param(jsonPath("items.0.qty"), nil), param(jsonPath("big"), nil)},
			mods: []func(*MessageInfo){func(m *MessageInfo) {
				m.Body = []byte(`{"customer":{"tier":2},"items":[{"qty":1.50}],"big":12345678901234567890123}`)
			}},
			want: []string{"2", "1.50", "12345678901234567890123"},
		},
		"json bool": {
			params: []v1alpha1.Parameter{param(jsonPath("ok"), nil)},
			mods:   []func(*MessageInfo){func(m *MessageInfo) { m.Body = []byte(`{"ok": true}`) }},
			want:   []string{"true"},
		},
		"json object is compact JSON in the body's key order": {
			params: []v1alpha1.Parameter{param(jsonPath("customer"), nil)}, want: []string{`{"id":"c-7","tier":2}`},
		},
		"json object keeps '<' unescaped": {
			params: []v1alpha1.Parameter{param(jsonPath("o"), nil)},
			mods:   []func(*MessageInfo){func(m *MessageInfo) { m.Body = []byte(`{"o": {"z": "<b>", "a": [1, 2]}}`) }},
			want:   []string{`{"z":"<b>","a":[1,2]}`},
		},
		"json array": {
			params: []v1alpha1.Parameter{param(jsonPath("items"), nil)}, want: []string{`[{"sku":"a-1","qty":1.50},{"sku":"b-2"}]`},
		},
		"json numeric segments index arrays": {
			params: []v1alpha1.Parameter{param(jsonPath("items.1.sku"), nil), param(jsonPath("items.0.qty"), nil)},
			want:   []string{"b-2", "1.50"},
		},
		"json numeric segment of a body array": {
			params: []v1alpha1.Parameter{param(jsonPath("0.1"), nil)},
			mods:   []func(*MessageInfo){func(m *MessageInfo) { m.Body = []byte(` [[1, "x"]] `) }},
			want:   []string{"x"},
		},
		"json numeric segment is an object key in objects": {
			params: []v1alpha1.Parameter{param(jsonPath("byCode.404"), nil)},
			mods:   []func(*MessageInfo){func(m *MessageInfo) { m.Body = []byte(`{"byCode": {"404": "not found"}}`) }},
			want:   []string{"not found"},
		},
		"json index out of range, default": {
			params: []v1alpha1.Parameter{param(jsonPath("items.2.sku"), ptr.To("none"))}, want: []string{"none"},
		},
		"json non-numeric segment on an array, default": {
			params: []v1alpha1.Parameter{param(jsonPath("items.first"), ptr.To("none")), param(jsonPath("items.-1"), ptr.To("none"))},
			want:   []string{"none", "none"},
		},
		"json path through a scalar, default": {
			params: []v1alpha1.Parameter{param(jsonPath("customer.id.x"), ptr.To("none"))}, want: []string{"none"},
		},
		"json null is missing": {
			params:  []v1alpha1.Parameter{param(jsonPath("note"), nil)},
			wantErr: `spec.dispatch.parameters[0]: json path "note" is missing and the parameter has no default`,
		},
		"json null, default": {
			params: []v1alpha1.Parameter{param(jsonPath("note"), ptr.To("none"))}, want: []string{"none"},
		},
		"json absent is missing": {
			params:  []v1alpha1.Parameter{param(jsonPath("customer.name"), nil)},
			wantErr: `spec.dispatch.parameters[0]: json path "customer.name" is missing and the parameter has no default`,
		},
		"body not JSON, no default": {
			params: []v1alpha1.Parameter{param(attr("customer"), nil), param(jsonPath("customer.id"), nil)}, mods: []func(*MessageInfo){notJSON},
			wantErr:   `spec.dispatch.parameters[1]: the message body is not JSON, so json path "customer.id" is missing and the parameter has no default`,
			wantIndex: 1,
		},
		"body not JSON, default": {
			params: []v1alpha1.Parameter{param(jsonPath("customer.id"), ptr.To("none"))}, mods: []func(*MessageInfo){notJSON},
			want: []string{"none"},
		},
		"empty body is not JSON": {
			params: []v1alpha1.Parameter{param(jsonPath("a"), nil)}, mods: []func(*MessageInfo){func(m *MessageInfo) { m.Body = nil }},
			wantErr: `spec.dispatch.parameters[0]: the message body is not JSON, so json path "a" is missing and the parameter has no default`,
		},
		"truncated JSON is not JSON": {
			params: []v1alpha1.Parameter{param(jsonPath("a"), nil)}, mods: []func(*MessageInfo){func(m *MessageInfo) { m.Body = []byte(`{"a": "b"`) }},
			wantErr: `spec.dispatch.parameters[0]: the message body is not JSON, so json path "a" is missing and the parameter has no default`,
		},
		"metadata": {
			params: []v1alpha1.Parameter{
				param(meta("messageId"), nil), param(meta("deliveryAttempt"), nil), param(meta("enqueuedAt"), nil), param(meta("queue"), nil),
			},
			mods: []func(*MessageInfo){func(m *MessageInfo) { m.Attempt = 100 }},
			want: []string{testMessageID, "100", "2026-03-04T04:06:07Z", testQueue},
		},
		"metadata enqueuedAt unknown, default": {
			params: []v1alpha1.Parameter{param(meta("enqueuedAt"), ptr.To(""))},
			mods:   []func(*MessageInfo){func(m *MessageInfo) { m.EnqueuedAt = time.Time{} }},
			want:   []string{""},
		},
		"metadata enqueuedAt unknown, no default": {
			params:  []v1alpha1.Parameter{param(meta("enqueuedAt"), nil)},
			mods:    []func(*MessageInfo){func(m *MessageInfo) { m.EnqueuedAt = time.Time{} }},
			wantErr: `spec.dispatch.parameters[0]: metadata "enqueuedAt" is missing (the queue did not report it) and the parameter has no default`,
		},
		"unknown metadata, even with a default": {
			params:  []v1alpha1.Parameter{param(meta("size"), ptr.To("0"))},
			wantErr: `spec.dispatch.parameters[0]: from.metadata: "size" is not one of messageId, deliveryAttempt, enqueuedAt or queue`,
		},
		"no source": {
			params:  []v1alpha1.Parameter{param(v1alpha1.ParameterSource{}, ptr.To("d"))},
			wantErr: `spec.dispatch.parameters[0]: from: exactly one of attribute, json or metadata is required`,
		},
		"two sources": {
			params:  []v1alpha1.Parameter{param(v1alpha1.ParameterSource{Attribute: "a", JSON: "b"}, nil)},
			wantErr: `spec.dispatch.parameters[0]: from: exactly one of attribute, json or metadata is required`,
		},
		"json path with an empty segment": {
			params:  []v1alpha1.Parameter{param(jsonPath("customer..id"), ptr.To("d"))},
			wantErr: `spec.dispatch.parameters[0]: from.json: path "customer..id" has an empty segment`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sj := makeMessageScaledJob(withParameters(tc.params...))
			got, err := ParameterValues(sj, makeMessage(tc.mods...))
			if tc.wantErr != "" {
				var perr *ParameterError
				if !errors.As(err, &perr) {
					t.Fatalf("ParameterValues() error = %v, want a *ParameterError %q", err, tc.wantErr)
				}
				if err.Error() != tc.wantErr {
					t.Errorf("ParameterValues() error =\n%q, want\n%q", err, tc.wantErr)
				}
				if perr.Index != tc.wantIndex {
					t.Errorf("ParameterError.Index = %d, want %d", perr.Index, tc.wantIndex)
				}
				if got != nil {
					t.Errorf("ParameterValues() = %q with an error, want nil", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParameterValues() error = %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParameterValues() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParameterValuesNoDispatch(t *testing.T) {
	got, err := ParameterValues(makeScaledJob(), makeMessage())
	if err != nil || got != nil {
		t.Errorf("ParameterValues() = %q, %v, want nil, nil", got, err)
	}
}

func TestParameterErrorMessage(t *testing.T) {
	err := error(&ParameterError{Index: 3, Reason: `attribute "customer" is missing and the parameter has no default`})
	want := `spec.dispatch.parameters[3]: attribute "customer" is missing and the parameter has no default`
	if err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
}

// TestBuildMessageDoesNotMutate checks that BuildMessage leaves the ScaledJob and the message alone, and that
// neither the Job nor the Secret shares memory with them.
func TestBuildMessageDoesNotMutate(t *testing.T) {
	tests := map[string]*v1alpha1.ScaledJob{
		"no labels anywhere": makeMessageScaledJob(),
		"full template and every kind of parameter": makeMessageScaledJob(func(sj *v1alpha1.ScaledJob) {
			sj.Generation = 4
			sj.Labels = map[string]string{"team": "pdf"}
			sj.Annotations = map[string]string{"owner": "pdf-team"}
			sj.Spec.Dispatch.Payload = &v1alpha1.Payload{MountPath: "/in"}
			s := &sj.Spec.JobTargetRef
			s.Template.Labels = map[string]string{"app": "pdf"}
			s.Template.Annotations = map[string]string{"a": "b"}
			s.Template.Spec.Volumes = []corev1.Volume{{Name: "scratch"}}
			s.Template.Spec.InitContainers = []corev1.Container{{Name: "fetch", Env: []corev1.EnvVar{{Name: "KUBEDISPATCH_QUEUE", Value: "x"}}}}
			c := &s.Template.Spec.Containers[0]
			c.Args = []string{"--render"}
			c.Env = []corev1.EnvVar{{Name: "CUSTOMER", Value: "template"}, {Name: "KUBEDISPATCH_MESSAGE_ID", Value: "x"}}
			c.VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}
		}, withParameters(
			v1alpha1.Parameter{From: v1alpha1.ParameterSource{Attribute: "customer"}, To: v1alpha1.ParameterTarget{Env: "CUSTOMER"}},
			v1alpha1.Parameter{From: v1alpha1.ParameterSource{JSON: "customer"}, To: v1alpha1.ParameterTarget{PodAnnotation: "customer"}},
			v1alpha1.Parameter{From: v1alpha1.ParameterSource{Metadata: "messageId"}, To: v1alpha1.ParameterTarget{PodLabel: "message"}},
			v1alpha1.Parameter{From: v1alpha1.ParameterSource{Attribute: "region"}, To: v1alpha1.ParameterTarget{Arg: &v1alpha1.ArgTarget{Prefix: "--region="}}, Default: ptr.To("eu")},
		)),
	}
	for name, sj := range tests {
		t.Run(name, func(t *testing.T) {
			before := sj.DeepCopy()
			m := makeMessage()
			mBefore := makeMessage()
			job, secret, err := BuildMessage(sj, m)
			if err != nil {
				t.Fatalf("BuildMessage() error = %v", err)
			}
			if diff := cmp.Diff(before, sj); diff != "" {
				t.Fatalf("BuildMessage() mutated the ScaledJob (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(mBefore, m); diff != "" {
				t.Fatalf("BuildMessage() mutated the message (-before +after):\n%s", diff)
			}

			job.Labels["team"] = "changed"
			job.Annotations["owner"] = "changed"
			job.Spec.Template.Labels["app"] = "changed"
			job.Spec.Template.Annotations["a"] = "changed"
			ps := &job.Spec.Template.Spec
			for i := range ps.Containers {
				ps.Containers[i].Env[0].Value = "changed"
				ps.Containers[i].VolumeMounts[0].MountPath = "/changed"
				ps.Containers[i].Args = append(ps.Containers[i].Args, "changed")
			}
			for i := range ps.InitContainers {
				ps.InitContainers[i].Env[0].Value = "changed"
			}
			ps.Volumes[0].Name = "changed"
			secret.Data["body"][0] = 'X'
			if diff := cmp.Diff(before, sj); diff != "" {
				t.Errorf("the Job shares memory with the ScaledJob (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(mBefore, m); diff != "" {
				t.Errorf("the Secret shares memory with the message (-before +after):\n%s", diff)
			}
		})
	}
}
