package jobtemplate

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
)

// Labels set on every Job besides v1alpha1.LabelScaledJob.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelComponent = "app.kubernetes.io/component"

	// ManagedBy is the value of LabelManagedBy.
	ManagedBy = "kubedispatch"
	// Component is the value of LabelComponent.
	Component = "job"
)

// SetByKubernetes reports whether Jobs or their pods get label key from the dispatcher or the Job controller,
// whatever the ScaledJob says: the kubedispatch.io/ scaledjob and message labels, the app.kubernetes.io labels
// above and the Job controller's job-name and controller-uid labels. A shard selector on such a key cannot select
// Jobs and pods the way it selects ScaledJobs.
func SetByKubernetes(key string) bool {
	switch key {
	case v1alpha1.LabelScaledJob, v1alpha1.LabelMessage, LabelName, LabelPartOf, LabelManagedBy, LabelComponent,
		batchv1.JobNameLabel, batchv1.ControllerUidLabel, "job-name", "controller-uid":
		return true
	}
	return false
}

const (
	// SuffixLength is the length of the random suffix RandomSuffix returns.
	SuffixLength = 5
	// MaxNameLength is the longest Job name Name returns. The Job controller copies the Job's name into the
	// batch.kubernetes.io/job-name label of its pods, and label values are at most 63 characters.
	MaxNameLength = 63
)

// ErrNoContainers is returned (wrapped) by Build when spec.jobTargetRef.template.spec.containers is empty. It is a
// permanent error: retrying does not help until the ScaledJob is fixed.
var ErrNoContainers = errors.New("spec.jobTargetRef.template.spec.containers: at least one container is required")

// Build returns the Job to create for sj, named name: a deep copy of spec.jobTargetRef in sj's namespace,
// controlled by sj. It never mutates sj.
//
// The Job's labels are sj's labels overlaid with v1alpha1.LabelScaledJob and the app.kubernetes.io labels (name
// and part-of set to sj's name, managed-by kubedispatch, component job); the pod template keeps its own labels
// and gains v1alpha1.LabelScaledJob. The pod template also gets sj's value of each label key in shardKeys (the
// keys of the dispatcher's --watch-label-selector), and loses the key when sj has none, so that a pod matches the
// shard's selector exactly when its ScaledJob does (the shard's pod cache holds its own pods, and only those). The Job's annotations are sj's annotations, except kubectl's
// last-applied-configuration and keys of the kubedispatch.io/ prefix (such as the pause annotation), overlaid with
// v1alpha1.AnnotationGeneration set to sj's generation. An empty restartPolicy becomes OnFailure.
//
// Build returns an error wrapping ErrNoContainers when the template has no container. For a ScaledJob that passes
// Validate, and a name from JobName or MessageJobName, the Job's name, labels and annotations are within what the
// API server accepts (the ScaledJob's name is at most 63 characters, the template's labels are valid, and the
// annotations leave room for the dispatcher's own).
func Build(sj *v1alpha1.ScaledJob, name string, shardKeys ...string) (*batchv1.Job, error) {
	if len(sj.Spec.JobTargetRef.Template.Spec.Containers) == 0 {
		return nil, fmt.Errorf("building job for ScaledJob %s/%s: %w", sj.Namespace, sj.Name, ErrNoContainers)
	}

	labels := make(map[string]string, len(sj.Labels)+5)
	for k, v := range sj.Labels {
		labels[k] = v
	}
	labels[v1alpha1.LabelScaledJob] = sj.Name
	labels[LabelName] = sj.Name
	labels[LabelPartOf] = sj.Name
	labels[LabelManagedBy] = ManagedBy
	labels[LabelComponent] = Component

	annotations := make(map[string]string, len(sj.Annotations)+1)
	for k, v := range sj.Annotations {
		if v1alpha1.CopiedToJobs(k) {
			annotations[k] = v
		}
	}
	annotations[v1alpha1.AnnotationGeneration] = strconv.FormatInt(sj.Generation, 10)

	spec := sj.Spec.JobTargetRef.DeepCopy()
	if spec.Template.Labels == nil {
		spec.Template.Labels = make(map[string]string, 1)
	}
	setShardLabels(&spec.Template, sj, shardKeys)
	spec.Template.Labels[v1alpha1.LabelScaledJob] = sj.Name
	if spec.Template.Spec.RestartPolicy == "" {
		spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	}

	return &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: batchv1.SchemeGroupVersion.String(), Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   sj.Namespace,
			Labels:      labels,
			Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{
				*metav1.NewControllerRef(sj, v1alpha1.GroupVersion.WithKind("ScaledJob")),
			},
		},
		Spec: *spec,
	}, nil
}

// Name returns "<scaledJob>-<suffix>" with the suffix from rnd (use RandomSuffix), at most MaxNameLength
// characters long: see JobName for the shortening. JobName is the name for a ScaledJob's Jobs.
func Name(scaledJob string, rnd func() string) string {
	return shorten(scaledJob, rnd(), MaxNameLength)
}

// JobName returns the name of a new count-mode Job of sj: "<sj.Name>-<suffix>" with the suffix from rnd (use
// RandomSuffix). When that would be longer than v1alpha1.JobNameLimit of sj's template (63, or less for an Indexed
// Job), the ScaledJob name is shortened, and any '-' or '.' left at its end is dropped, so that the name stays a
// valid Job name; the suffix, which makes the name unique, is always kept whole.
func JobName(sj *v1alpha1.ScaledJob, rnd func() string) string {
	return shorten(sj.Name, rnd(), v1alpha1.JobNameLimit(&sj.Spec.JobTargetRef))
}

// shorten returns "<prefix>-<suffix>" in at most limit characters, cutting prefix (and any '-' or '.' the cut
// leaves at its end) as needed.
func shorten(prefix, suffix string, limit int) string {
	keep := max(limit-len(suffix)-1, 0)
	if len(prefix) > keep {
		prefix = strings.TrimRight(prefix[:keep], "-.")
	}
	return prefix + "-" + suffix
}

// RandomSuffix returns SuffixLength random lowercase alphanumeric characters, as the API server's generateName
// does.
func RandomSuffix() string {
	return utilrand.String(SuffixLength)
}

// setShardLabels gives the pod template sj's value of each label key in shardKeys, and removes the keys sj does
// not have: one rule for Build and BuildMessage (which applies it again after the parameters, so a to.podLabel
// parameter cannot move a pod out of its shard).
func setShardLabels(tmpl *corev1.PodTemplateSpec, sj *v1alpha1.ScaledJob, shardKeys []string) {
	for _, k := range shardKeys {
		if v, ok := sj.Labels[k]; ok {
			tmpl.Labels[k] = v
		} else {
			delete(tmpl.Labels, k)
		}
	}
}
