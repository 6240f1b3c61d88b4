package explain

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// quotaResources are the quota resources a new Job uses up: the Job itself, its pod, and in message mode the
// payload Secret.
var quotaResources = []struct {
	name    corev1.ResourceName
	message bool // only in message mode
	what    string
}{
	{name: "count/jobs.batch", what: "new Jobs"},
	{name: corev1.ResourcePods, what: "the Jobs' pods"},
	{name: "count/pods", what: "the Jobs' pods"},
	{name: corev1.ResourceSecrets, message: true, what: "the messages' payload Secrets"},
	{name: "count/secrets", message: true, what: "the messages' payload Secrets"},
}

// quotaBlockers returns a blocker for each quota whose count of Jobs, pods or (message mode) Secrets is used up,
// and a note for each within 10% of its limit. CPU and memory quotas are not weighed: whether a Job fits depends
// on its requests and the pods' defaults, which the API server decides.
func quotaBlockers(quotas []corev1.ResourceQuota, messageMode bool) (blockers, notes []string) {
	for i := range quotas {
		q := &quotas[i]
		for _, r := range quotaResources {
			if r.message && !messageMode {
				continue
			}
			hard, ok := q.Status.Hard[r.name]
			if !ok {
				hard, ok = q.Spec.Hard[r.name]
			}
			if !ok {
				continue
			}
			used := q.Status.Used[r.name]
			switch {
			case used.Cmp(hard) >= 0:
				blockers = append(blockers, fmt.Sprintf("ResourceQuota %s: %s used %s of %s: the API server refuses %s until some finish or are deleted",
					q.Name, r.name, used.String(), hard.String(), r.what))
			case hard.Value() > 0 && used.Value()*10 >= hard.Value()*9:
				notes = append(notes, fmt.Sprintf("ResourceQuota %s: %s used %s of %s", q.Name, r.name, used.String(), hard.String()))
			}
		}
	}
	return blockers, notes
}
