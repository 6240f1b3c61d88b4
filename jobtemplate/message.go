package jobtemplate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
)

// MaxPayloadBytes is the largest message body BuildMessage accepts: the most data a Secret can hold
// (corev1.MaxSecretSize, 1 MiB).
const MaxPayloadBytes = corev1.MaxSecretSize

// ErrPayloadTooLarge is returned (wrapped) by BuildMessage when the message body is larger than MaxPayloadBytes. It
// is a permanent error for that message: retrying it does not help.
var ErrPayloadTooLarge = errors.New("message body is too large for a Secret")

const (
	// messageVolume is the name of the Secret volume holding the message body.
	messageVolume = v1alpha1.PayloadVolume
	// keyLength is the number of hex characters of a message key.
	keyLength = 16
	// payloadMode is the file mode of the mounted body: readable by any user the container runs as.
	payloadMode int32 = 0o444
)

// MessageInfo is what the builder needs to know about one message.
type MessageInfo struct {
	// ID is the queue's message id.
	ID string
	// Queue is the queue's identity (SQS: the queue URL).
	Queue string
	// Body is the message body, written to the Job's Secret.
	Body []byte
	// Attributes are the sender's message attributes.
	Attributes map[string]string
	// EnqueuedAt is when the queue received the message; zero when unknown.
	EnqueuedAt time.Time
	// Attempt is 1 for the message's first Job, 2 for its second, ...
	Attempt int32
}

// ParameterError says why spec.dispatch.parameters[Index] could not be applied to a message: its source is missing
// and it has no default, or its value does not fit its destination, or the parameter itself is malformed.
type ParameterError struct {
	// Index is the parameter's index in spec.dispatch.parameters.
	Index int
	// Reason says what is wrong, such as `attribute "customer" is missing and the parameter has no default`.
	Reason string
}

// Error returns "spec.dispatch.parameters[<Index>]: <Reason>".
func (e *ParameterError) Error() string {
	return fmt.Sprintf("spec.dispatch.parameters[%d]: %s", e.Index, e.Reason)
}

// MessageKey returns the value of the v1alpha1.LabelMessage label for the message id of queue: the first 16 hex
// characters of the SHA-256 of queue, a NUL byte and id. Every attempt of one message has the same key.
func MessageKey(queue, id string) string {
	sum := sha256.Sum256([]byte(queue + "\x00" + id))
	return hex.EncodeToString(sum[:])[:keyLength]
}

// MessageJobName returns "<sj.Name>-<key>-<attempt>", the name of a message's Job (and of its Secret). As with
// JobName, the ScaledJob name is shortened, and any '-' or '.' left at its end dropped, so that the name is at
// most v1alpha1.JobNameLimit characters (63, or less for an Indexed Job). The name is deterministic: every replica
// and every restart finds the same name for one attempt of one message.
func MessageJobName(sj *v1alpha1.ScaledJob, key string, attempt int32) string {
	return shorten(sj.Name, key+"-"+strconv.FormatInt(int64(attempt), 10), v1alpha1.JobNameLimit(&sj.Spec.JobTargetRef))
}

// BuildMessage returns the Job that processes message m for sj (message mode), and the Secret holding the message
// body, both named MessageJobName(sj, MessageKey(m.Queue, m.ID), m.Attempt). It never mutates sj or m.
//
// The Job is Build's Job, plus:
//   - the label v1alpha1.LabelMessage (the message key) on the Job and its pod template;
//   - the annotations v1alpha1.AnnotationMessageID, AnnotationQueue, AnnotationDelivery (the attempt) and
//     AnnotationEnqueuedAt (RFC 3339, UTC; omitted when m.EnqueuedAt is zero) on the Job and its pod template;
//   - in every container and init container, the variables KUBEDISPATCH_MESSAGE_ID, KUBEDISPATCH_MESSAGE_PATH
//     (<payload mount path>/body), KUBEDISPATCH_DELIVERY, KUBEDISPATCH_QUEUE and KUBEDISPATCH_ENQUEUED_AT
//     (omitted when m.EnqueuedAt is zero). A variable of the same name in the template is replaced where it
//     stands, so later variables of the template can refer to it as $(KUBEDISPATCH_MESSAGE_ID); others are
//     appended;
//   - the Secret volume "kubedispatch-message" (file "body", mode 0444), mounted read-only at
//     sj.Spec.PayloadMountPath() in every container and init container;
//   - the shard label keys (shardKeys, see Build) set again after the parameters, so a to.podLabel parameter on
//     one of them is overridden;
//   - spec.dispatch.parameters, in order, after the variables above: to.env sets a variable in every container
//     and init container (replacing one of the same name), to.podAnnotation and to.podLabel set a pod template
//     annotation or label, to.arg appends "<prefix><value>" to the args of the named container (the first when
//     unnamed). A container with neither command nor args runs the image's entrypoint with these args in place
//     of the image's CMD.
//
// Values written into env and args have every '$' doubled, so that the kubelet's $(VAR) expansion leaves them as
// they are: the container sees exactly the message's value.
//
// The Secret has the labels v1alpha1.LabelScaledJob and LabelMessage, the single key "body" and is immutable. It
// has no owner: the caller makes the Job its owner once the Job exists.
//
// Errors, each naming the ScaledJob:
//   - Build's error wrapping ErrNoContainers;
//   - a *field.Error naming the template field when the template already has a volume named
//     "kubedispatch-message" or a container already mounts something at the payload mount path (the spec must
//     change);
//   - an error wrapping ErrPayloadTooLarge when m.Body is larger than MaxPayloadBytes;
//   - a *ParameterError (see ParameterValues) when a parameter's value is missing, is not a valid label value for
//     to.podLabel, would push the pod template's annotations over their size limit, targets a container the
//     template does not have, or would overwrite a label, annotation or variable BuildMessage sets itself;
//   - an error when m.Attempt is less than 1.
func BuildMessage(sj *v1alpha1.ScaledJob, m MessageInfo, shardKeys ...string) (*batchv1.Job, *corev1.Secret, error) {
	if m.Attempt < 1 {
		return nil, nil, fmt.Errorf("building message Job for ScaledJob %s/%s: attempt %d of message %q is less than 1",
			sj.Namespace, sj.Name, m.Attempt, m.ID)
	}
	key := MessageKey(m.Queue, m.ID)
	name := MessageJobName(sj, key, m.Attempt)
	job, err := Build(sj, name, shardKeys...)
	if err != nil {
		return nil, nil, err
	}
	mountPath := sj.Spec.PayloadMountPath()
	if ferr := checkReserved(&job.Spec.Template.Spec, mountPath); ferr != nil {
		return nil, nil, fmt.Errorf("building message Job for ScaledJob %s/%s: %w", sj.Namespace, sj.Name, ferr)
	}
	if len(m.Body) > MaxPayloadBytes {
		return nil, nil, fmt.Errorf("building message Job for ScaledJob %s/%s: %w: the body of message %q is %d bytes, the limit is %d",
			sj.Namespace, sj.Name, ErrPayloadTooLarge, m.ID, len(m.Body), MaxPayloadBytes)
	}
	values, err := ParameterValues(sj, m)
	if err != nil {
		return nil, nil, fmt.Errorf("building message Job for ScaledJob %s/%s: %w", sj.Namespace, sj.Name, err)
	}

	meta := messageMeta(m)
	job.Labels[v1alpha1.LabelMessage] = key
	for _, kv := range meta {
		job.Annotations[kv.key] = kv.value
	}
	tmpl := &job.Spec.Template
	tmpl.Labels[v1alpha1.LabelMessage] = key
	if tmpl.Annotations == nil {
		tmpl.Annotations = make(map[string]string, len(meta))
	}
	for _, kv := range meta {
		tmpl.Annotations[kv.key] = kv.value
	}

	env := messageEnv(m, mountPath)
	volume := corev1.Volume{
		Name: messageVolume,
		VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName:  name,
			Items:       []corev1.KeyToPath{{Key: v1alpha1.PayloadFile, Path: v1alpha1.PayloadFile}},
			DefaultMode: ptr.To(payloadMode),
		}},
	}
	mount := corev1.VolumeMount{Name: messageVolume, MountPath: mountPath, ReadOnly: true}
	ps := &tmpl.Spec
	ps.Volumes = append(ps.Volumes, volume)
	for _, c := range allContainers(ps) {
		for _, kv := range env {
			setEnv(c, kv.key, kv.value)
		}
		c.VolumeMounts = append(c.VolumeMounts, mount)
	}

	if sj.Spec.Dispatch != nil {
		for i, prm := range sj.Spec.Dispatch.Parameters {
			if err := applyParameter(tmpl, prm, values[i]); err != nil {
				return nil, nil, fmt.Errorf("building message Job for ScaledJob %s/%s: %w", sj.Namespace, sj.Name,
					&ParameterError{Index: i, Reason: err.Error()})
			}
		}
	}
	setShardLabels(tmpl, sj, shardKeys)

	secret := &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: corev1.SchemeGroupVersion.String(), Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: sj.Namespace,
			Labels:    map[string]string{v1alpha1.LabelScaledJob: sj.Name, v1alpha1.LabelMessage: key},
		},
		Immutable: ptr.To(true),
		Data:      map[string][]byte{v1alpha1.PayloadFile: append([]byte{}, m.Body...)},
		Type:      corev1.SecretTypeOpaque,
	}
	return job, secret, nil
}

// ParameterValues returns the value of each of sj's spec.dispatch.parameters for message m, in order (nil when
// there are none). A parameter reads:
//   - from.attribute: the message attribute of that name;
//   - from.json: the dotted path into the body parsed as JSON, numeric segments indexing arrays. A string is used
//     as it is; any other value as its compact JSON text. null, an absent path or a body that is not JSON is
//     missing;
//   - from.metadata: messageId, deliveryAttempt (decimal), enqueuedAt (RFC 3339, UTC; missing when unknown) or
//     queue.
//
// A missing value is the parameter's default; without a default, ParameterValues returns a *ParameterError
// naming the source. A parameter without exactly one source, with an unknown metadata name or a json path with an
// empty segment is a *ParameterError too, default or not. ParameterValues does not look at destinations: whether
// a value fits its destination is checked by BuildMessage. It never mutates sj or m.
func ParameterValues(sj *v1alpha1.ScaledJob, m MessageInfo) ([]string, error) {
	if sj.Spec.Dispatch == nil || len(sj.Spec.Dispatch.Parameters) == 0 {
		return nil, nil
	}
	body := lazyBody{raw: m.Body}
	values := make([]string, len(sj.Spec.Dispatch.Parameters))
	for i, prm := range sj.Spec.Dispatch.Parameters {
		v, missing, err := sourceValue(prm.From, m, &body)
		switch {
		case err != nil:
			return nil, &ParameterError{Index: i, Reason: err.Error()}
		case missing == "":
			values[i] = v
		case prm.Default != nil:
			values[i] = *prm.Default
		default:
			return nil, &ParameterError{Index: i, Reason: missing + " and the parameter has no default"}
		}
	}
	return values, nil
}

// sourceValue returns the value src reads from m. When it is missing, missing says so ("attribute \"x\" is
// missing") and the value is empty; err reports a malformed source.
func sourceValue(src v1alpha1.ParameterSource, m MessageInfo, body *lazyBody) (value, missing string, err error) {
	n := 0
	for _, set := range []bool{src.Attribute != "", src.JSON != "", src.Metadata != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return "", "", errors.New("from: exactly one of attribute, json or metadata is required")
	}
	switch {
	case src.Attribute != "":
		v, ok := m.Attributes[src.Attribute]
		if !ok {
			return "", fmt.Sprintf("attribute %q is missing", src.Attribute), nil
		}
		return v, "", nil
	case src.JSON != "":
		segments := strings.Split(src.JSON, ".")
		for _, s := range segments {
			if s == "" {
				return "", "", fmt.Errorf("from.json: path %q has an empty segment", src.JSON)
			}
		}
		if !body.isJSON() {
			return "", fmt.Sprintf("the message body is not JSON, so json path %q is missing", src.JSON), nil
		}
		v, ok := lookupJSON(body.raw, segments)
		if !ok {
			return "", fmt.Sprintf("json path %q is missing", src.JSON), nil
		}
		return v, "", nil
	}
	switch src.Metadata {
	case v1alpha1.MetadataMessageID:
		return m.ID, "", nil
	case v1alpha1.MetadataDeliveryAttempt:
		return strconv.FormatInt(int64(m.Attempt), 10), "", nil
	case v1alpha1.MetadataQueue:
		return m.Queue, "", nil
	case v1alpha1.MetadataEnqueuedAt:
		if m.EnqueuedAt.IsZero() {
			return "", fmt.Sprintf("metadata %q is missing (the queue did not report it)", src.Metadata), nil
		}
		return formatTime(m.EnqueuedAt), "", nil
	}
	return "", "", fmt.Errorf("from.metadata: %q is not one of %s, %s, %s or %s", src.Metadata,
		v1alpha1.MetadataMessageID, v1alpha1.MetadataDeliveryAttempt, v1alpha1.MetadataEnqueuedAt, v1alpha1.MetadataQueue)
}

// lazyBody checks once, on first use, whether a message body is JSON.
type lazyBody struct {
	raw     []byte
	checked bool
	valid   bool
}

func (b *lazyBody) isJSON() bool {
	if !b.checked {
		b.checked, b.valid = true, json.Valid(b.raw)
	}
	return b.valid
}

// lookupJSON follows segments into the valid JSON document doc. A string result is returned unquoted, any other
// as its compact JSON text (numbers exactly as written, object keys in the body's order); null and absent paths
// are not found.
func lookupJSON(doc []byte, segments []string) (string, bool) {
	cur := json.RawMessage(bytes.TrimSpace(doc))
	for _, seg := range segments {
		switch firstByte(cur) {
		case '{':
			var obj map[string]json.RawMessage
			if json.Unmarshal(cur, &obj) != nil {
				return "", false
			}
			next, ok := obj[seg]
			if !ok {
				return "", false
			}
			cur = bytes.TrimSpace(next)
		case '[':
			idx, ok := arrayIndex(seg)
			if !ok {
				return "", false
			}
			var arr []json.RawMessage
			if json.Unmarshal(cur, &arr) != nil || idx >= len(arr) {
				return "", false
			}
			cur = bytes.TrimSpace(arr[idx])
		default:
			return "", false
		}
	}
	switch firstByte(cur) {
	case 'n':
		return "", false
	case '"':
		var s string
		if json.Unmarshal(cur, &s) != nil {
			return "", false
		}
		return s, true
	}
	var out bytes.Buffer
	if json.Compact(&out, cur) != nil {
		return "", false
	}
	return out.String(), true
}

func firstByte(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// arrayIndex parses a path segment of decimal digits as an array index.
func arrayIndex(seg string) (int, bool) {
	for i := 0; i < len(seg); i++ {
		if seg[i] < '0' || seg[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(seg)
	return n, err == nil
}

// keyValue is one label, annotation or environment variable.
type keyValue struct{ key, value string }

// messageMeta returns the annotations describing m, in a fixed order.
func messageMeta(m MessageInfo) []keyValue {
	kvs := []keyValue{
		{v1alpha1.AnnotationMessageID, m.ID},
		{v1alpha1.AnnotationQueue, m.Queue},
		{v1alpha1.AnnotationDelivery, strconv.FormatInt(int64(m.Attempt), 10)},
	}
	if !m.EnqueuedAt.IsZero() {
		kvs = append(kvs, keyValue{v1alpha1.AnnotationEnqueuedAt, formatTime(m.EnqueuedAt)})
	}
	return kvs
}

// messageEnv returns the KUBEDISPATCH_ variables for m, in a fixed order.
func messageEnv(m MessageInfo, mountPath string) []keyValue {
	kvs := []keyValue{
		{v1alpha1.EnvMessageID, m.ID},
		{v1alpha1.EnvMessagePath, mountPath + "/" + v1alpha1.PayloadFile},
		{v1alpha1.EnvDelivery, strconv.FormatInt(int64(m.Attempt), 10)},
		{v1alpha1.EnvQueue, m.Queue},
	}
	if !m.EnqueuedAt.IsZero() {
		kvs = append(kvs, keyValue{v1alpha1.EnvEnqueuedAt, formatTime(m.EnqueuedAt)})
	}
	return kvs
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// checkReserved reports a volume of the template named like the message volume, or a mount of any container or
// init container at the payload mount path.
func checkReserved(ps *corev1.PodSpec, mountPath string) *field.Error {
	sp := field.NewPath("spec", "jobTargetRef", "template", "spec")
	for i, v := range ps.Volumes {
		if v.Name == messageVolume {
			return field.Invalid(sp.Child("volumes").Index(i).Child("name"), v.Name,
				"is reserved for the message body volume of message mode; rename the volume")
		}
	}
	want := path.Clean(mountPath)
	for _, group := range []struct {
		name       string
		containers []corev1.Container
	}{{"initContainers", ps.InitContainers}, {"containers", ps.Containers}} {
		for i, c := range group.containers {
			for j, vm := range c.VolumeMounts {
				if path.Clean(vm.MountPath) == want {
					return field.Invalid(sp.Child(group.name).Index(i).Child("volumeMounts").Index(j).Child("mountPath"), vm.MountPath,
						"is where message mode mounts the message body (spec.dispatch.payload.mountPath); mount this volume elsewhere or set spec.dispatch.payload.mountPath to another directory")
				}
			}
		}
	}
	return nil
}

// allContainers returns pointers to the init containers and containers of ps, in that order.
func allContainers(ps *corev1.PodSpec) []*corev1.Container {
	cs := make([]*corev1.Container, 0, len(ps.InitContainers)+len(ps.Containers))
	for i := range ps.InitContainers {
		cs = append(cs, &ps.InitContainers[i])
	}
	for i := range ps.Containers {
		cs = append(cs, &ps.Containers[i])
	}
	return cs
}

// setEnv sets the variable name of c to the literal value: it replaces the first variable of that name where it
// stands and drops any later one, or appends the variable.
func setEnv(c *corev1.Container, name, value string) {
	v := corev1.EnvVar{Name: name, Value: escapeExpansion(value)}
	out := c.Env[:0:0]
	found := false
	for _, e := range c.Env {
		if e.Name != name {
			out = append(out, e)
		} else if !found {
			out, found = append(out, v), true
		}
	}
	if !found {
		out = append(out, v)
	}
	c.Env = out
}

// escapeExpansion doubles every '$' of s, so that the kubelet's $(VAR) expansion of env values and args yields s.
func escapeExpansion(s string) string { return strings.ReplaceAll(s, "$", "$$") }

// reservedEnv, reservedLabel and reservedAnnotation report the names BuildMessage sets itself, which a parameter
// must not overwrite.
func reservedEnv(name string) bool {
	switch name {
	case v1alpha1.EnvMessageID, v1alpha1.EnvMessagePath, v1alpha1.EnvDelivery, v1alpha1.EnvQueue, v1alpha1.EnvEnqueuedAt:
		return true
	}
	return false
}

func reservedLabel(key string) bool {
	return key == v1alpha1.LabelScaledJob || key == v1alpha1.LabelMessage
}

func reservedAnnotation(key string) bool {
	switch key {
	case v1alpha1.AnnotationMessageID, v1alpha1.AnnotationQueue, v1alpha1.AnnotationDelivery, v1alpha1.AnnotationEnqueuedAt:
		return true
	}
	return false
}

// applyParameter writes value to prm's destination in tmpl. Its error is the reason of a ParameterError.
func applyParameter(tmpl *corev1.PodTemplateSpec, prm v1alpha1.Parameter, value string) error {
	to := prm.To
	n := 0
	for _, set := range []bool{to.Env != "", to.PodAnnotation != "", to.PodLabel != "", to.Arg != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return errors.New("to: exactly one of env, podAnnotation, podLabel or arg is required")
	}
	switch {
	case to.Env != "":
		if reservedEnv(to.Env) {
			return fmt.Errorf("to.env: %s is set by the dispatcher", to.Env)
		}
		for _, c := range allContainers(&tmpl.Spec) {
			setEnv(c, to.Env, value)
		}
	case to.PodAnnotation != "":
		if reservedAnnotation(to.PodAnnotation) {
			return fmt.Errorf("to.podAnnotation: %s is set by the dispatcher", to.PodAnnotation)
		}
		tmpl.Annotations[to.PodAnnotation] = value
		if err := apivalidation.ValidateAnnotationsSize(tmpl.Annotations); err != nil {
			return fmt.Errorf("to.podAnnotation %s: a value of %d bytes makes the pod template's annotations too large (%v)",
				to.PodAnnotation, len(value), err)
		}
	case to.PodLabel != "":
		if reservedLabel(to.PodLabel) {
			return fmt.Errorf("to.podLabel: %s is set by the dispatcher", to.PodLabel)
		}
		if msgs := validation.IsValidLabelValue(value); len(msgs) > 0 {
			return fmt.Errorf("to.podLabel %s: %q is not a valid label value: %s", to.PodLabel, value, strings.Join(msgs, "; "))
		}
		tmpl.Labels[to.PodLabel] = value
	default:
		cs := tmpl.Spec.Containers
		idx := 0
		if name := to.Arg.Container; name != "" {
			idx = -1
			for i := range cs {
				if cs[i].Name == name {
					idx = i
					break
				}
			}
			if idx < 0 {
				return fmt.Errorf("to.arg.container: %q is not a container of spec.jobTargetRef.template.spec.containers", name)
			}
		}
		cs[idx].Args = append(cs[idx].Args, escapeExpansion(to.Arg.Prefix+value))
	}
	return nil
}
