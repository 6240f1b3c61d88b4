package main

import (
	"fmt"
	"slices"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/dispatch"
	"github.com/kubedispatch/kubedispatch/jobtemplate"
)

// unfinishedPods selects the pods that have not reached a terminal phase. The dispatcher reads pods only to tell
// whether an unfinished Job is pending, and a Succeeded or Failed pod never makes one "not pending" for long: its
// Job is marked finished by the Job controller right after. Leaving terminal pods out of the cache keeps it at the
// size of the running work (2k pods, not the 12k of a namespace with 10k finished Jobs in history).
var unfinishedPods = fields.AndSelectors(
	fields.OneTermNotEqualSelector("status.phase", string(corev1.PodSucceeded)),
	fields.OneTermNotEqualSelector("status.phase", string(corev1.PodFailed)),
)

// shard is what --watch-label-selector selects.
type shard struct {
	// selector picks the ScaledJobs (nil: all).
	selector labels.Selector
	// keys are the label keys selector names. The dispatcher copies the ScaledJob's values of them onto its Jobs
	// and their pods (jobtemplate.Build), so the same selector picks the shard's Jobs and pods.
	keys []string
	// unshardable is a key the dispatcher or the Job controller sets on Jobs or pods itself
	// (jobtemplate.SetByKubernetes): with it, the Job and pod caches cannot follow the shard and hold every
	// managed Job and pod ("" when there is none).
	unshardable string
}

// parseShard parses --watch-label-selector.
func parseShard(opts Options) (shard, error) {
	if opts.WatchLabelSelector == "" {
		return shard{}, nil
	}
	sel, err := labels.Parse(opts.WatchLabelSelector)
	if err != nil {
		return shard{}, fmt.Errorf("parsing --watch-label-selector %q: %w", opts.WatchLabelSelector, err)
	}
	s := shard{selector: sel}
	reqs, _ := sel.Requirements()
	for _, r := range reqs {
		if jobtemplate.SetByKubernetes(r.Key()) && s.unshardable == "" {
			s.unshardable = r.Key()
		}
		if !slices.Contains(s.keys, r.Key()) {
			s.keys = append(s.keys, r.Key())
		}
	}
	return s, nil
}

// jobKeys are the label keys the Job builders copy onto pods: the shard's, unless the caches cannot follow it.
func (s shard) jobKeys() []string {
	if s.unshardable != "" {
		return nil
	}
	return s.keys
}

// cacheOptions restricts the informers: Jobs and pods only with the kubedispatch.io/scaledjob label, so memory
// does not grow with the rest of the cluster's workload, pods only while they run; namespaces from the flags, and
// the shard's --watch-label-selector for ScaledJobs, Jobs and pods.
func cacheOptions(opts Options, sh shard) (cache.Options, error) {
	managed, err := labels.NewRequirement(v1alpha1.LabelScaledJob, selection.Exists, nil)
	if err != nil {
		return cache.Options{}, fmt.Errorf("building label selector: %w", err)
	}
	owned := labels.NewSelector().Add(*managed)
	byObject := map[client.Object]cache.ByObject{}
	if sh.selector != nil {
		byObject[&v1alpha1.ScaledJob{}] = cache.ByObject{Label: sh.selector}
		if sh.unshardable == "" {
			reqs, _ := sh.selector.Requirements()
			owned = owned.Add(reqs...)
		}
	}
	byObject[&batchv1.Job{}] = cache.ByObject{Label: owned, Transform: trimJob}
	byObject[&corev1.Pod{}] = cache.ByObject{Label: owned, Field: unfinishedPods, Transform: trimPod}
	// Cached objects drop their managedFields (often half of a Job's size); Jobs and pods keep only what the
	// dispatcher reads.
	co := cache.Options{ByObject: byObject, DefaultTransform: cache.TransformStripManagedFields()}
	if ns := opts.Namespaces(); len(ns) > 0 {
		co.DefaultNamespaces = map[string]cache.Config{}
		for _, n := range ns {
			co.DefaultNamespaces[n] = cache.Config{}
		}
	}
	return co, nil
}

// trimPod keeps what the dispatcher reads of a pod: its name, the labels that name its ScaledJob and its Job, its
// phase and the types of its conditions that are True (what pendingPodConditions compares). The owner reference
// stays only when no Job-name label says which Job the pod belongs to. The spec, container statuses, annotations
// and the conditions' times and messages are dropped, so 10k cached pods stay small.
func trimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{
		TypeMeta:   p.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion},
		Status:     corev1.PodStatus{Phase: p.Status.Phase},
	}
	kept := map[string]string{}
	for _, k := range append([]string{v1alpha1.LabelScaledJob}, dispatch.JobNameLabels...) {
		if v, ok := p.Labels[k]; ok {
			kept[k] = v
		}
	}
	out.Labels = kept
	if dispatch.JobNameOf(out) == "" {
		out.OwnerReferences = p.OwnerReferences
	}
	for _, c := range p.Status.Conditions {
		if c.Status == corev1.ConditionTrue {
			out.Status.Conditions = append(out.Status.Conditions, corev1.PodCondition{Type: c.Type, Status: c.Status})
		}
	}
	return out, nil
}

// trimJob keeps what the dispatcher reads of a Job: its metadata with only the kubedispatch.io/ labels and
// annotations (the ScaledJob, message, attempt, generation, create token and window occurrence), its owner, its
// parallelism, completions and suspension, and its status. The pod template (most of a Job's size) and the labels
// and annotations copied from the ScaledJob are dropped. Jobs are never updated from the cache.
func trimJob(obj any) (any, error) {
	j, ok := obj.(*batchv1.Job)
	if !ok {
		return obj, nil
	}
	out := &batchv1.Job{TypeMeta: j.TypeMeta, ObjectMeta: j.ObjectMeta, Status: j.Status}
	out.ManagedFields = nil
	out.Labels = ownKeys(j.Labels)
	out.Annotations = ownKeys(j.Annotations)
	out.Spec = batchv1.JobSpec{Parallelism: j.Spec.Parallelism, Completions: j.Spec.Completions, Suspend: j.Spec.Suspend}
	return out, nil
}

// ownKeys returns the entries of m under the kubedispatch.io/ prefix (nil when there are none).
func ownKeys(m map[string]string) map[string]string {
	var out map[string]string
	for k, v := range m {
		if strings.HasPrefix(k, v1alpha1.GroupVersion.Group+"/") {
			if out == nil {
				out = make(map[string]string, 4)
			}
			out[k] = v
		}
	}
	return out
}
