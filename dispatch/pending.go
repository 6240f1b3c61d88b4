package dispatch

import (
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// This file reproduces which Jobs KEDA counts as running and pending (keda-scaledjob-reference.md §2.5).

// IsFinished reports whether a Job has condition Complete=True or Failed=True.
func IsFinished(job *batchv1.Job) bool {
	for _, c := range job.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// IsPending reports whether an unfinished Job counts as pending, given its pods and the
// pendingPodConditions list.
//
// With an empty list the Job is pending unless some pod is in phase Running or Succeeded (so no pods at
// all means pending). With a list, the Job is pending unless at least one pod has every listed condition
// with status True.
//
// Deliberate difference from KEDA: the list is de-duplicated first. KEDA compares the number of fulfilled
// conditions with the list length, so a duplicate entry makes a Job pending forever.
func IsPending(pods []corev1.Pod, pendingPodConditions []string) bool {
	wanted := uniqueConditions(pendingPodConditions)
	for i := range pods {
		if len(wanted) == 0 {
			if phase := pods[i].Status.Phase; phase == corev1.PodRunning || phase == corev1.PodSucceeded {
				return false
			}
			continue
		}
		if hasAllConditions(&pods[i], wanted) {
			return false
		}
	}
	return true
}

// JobPending reports whether the unfinished Job j counts as pending, given its unfinished pods: IsPending on them,
// except that with an empty pendingPodConditions list a Job that has a succeeded pod (status.succeeded > 0) has
// started. The dispatcher caches pods only until they finish, so a pod that has succeeded is known from the Job's
// status; with a list, finished pods do not count (their conditions are not cached).
func JobPending(j *batchv1.Job, pods []corev1.Pod, pendingPodConditions []string) bool {
	if len(uniqueConditions(pendingPodConditions)) == 0 && j.Status.Succeeded > 0 {
		return false
	}
	return IsPending(pods, pendingPodConditions)
}

// Unfinished reports whether a pod has not reached a terminal phase: the pods the dispatcher caches and counts.
func Unfinished(p *corev1.Pod) bool {
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

// JobNameOf returns the name of the Job that owns a pod: its batch.kubernetes.io/job-name (or legacy job-name)
// label, else its controller owner reference.
func JobNameOf(p *corev1.Pod) string {
	for _, k := range JobNameLabels {
		if n := p.Labels[k]; n != "" {
			return n
		}
	}
	if ref := metav1.GetControllerOf(p); ref != nil && ref.Kind == "Job" {
		return ref.Name
	}
	return ""
}

// JobNameLabels are the labels the Job controller sets on its pods to the Job's name, newest first.
var JobNameLabels = []string{batchv1.JobNameLabel, "job-name"}

// Count returns running (unfinished) and pending counts. podsByJob maps Job name to its pods.
func Count(jobs []batchv1.Job, podsByJob map[string][]corev1.Pod, pendingPodConditions []string) (running, pending int64) {
	for i := range jobs {
		if IsFinished(&jobs[i]) {
			continue
		}
		running++
		if JobPending(&jobs[i], podsByJob[jobs[i].Name], pendingPodConditions) {
			pending++
		}
	}
	return running, pending
}

// uniqueConditions returns the condition types of list without duplicates.
func uniqueConditions(list []string) map[corev1.PodConditionType]struct{} {
	set := make(map[corev1.PodConditionType]struct{}, len(list))
	for _, c := range list {
		set[corev1.PodConditionType(c)] = struct{}{}
	}
	return set
}

// hasAllConditions reports whether pod has every condition type in wanted with status True.
func hasAllConditions(pod *corev1.Pod, wanted map[corev1.PodConditionType]struct{}) bool {
	fulfilled := make(map[corev1.PodConditionType]struct{}, len(wanted))
	for _, c := range pod.Status.Conditions {
		if _, ok := wanted[c.Type]; ok && c.Status == corev1.ConditionTrue {
			fulfilled[c.Type] = struct{}{}
		}
	}
	return len(fulfilled) == len(wanted)
}
