package explain

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubedispatch/kubedispatch/dispatch"
	"github.com/kubedispatch/kubedispatch/sources"
)

func quota(name string, hard, used map[corev1.ResourceName]string) corev1.ResourceQuota {
	q := corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.ResourceQuotaStatus{Hard: corev1.ResourceList{}, Used: corev1.ResourceList{}}}
	for k, v := range hard {
		q.Status.Hard[k] = resource.MustParse(v)
	}
	for k, v := range used {
		q.Status.Used[k] = resource.MustParse(v)
	}
	return q
}

func TestExplainQuota(t *testing.T) {
	tests := map[string]struct {
		quotas      []corev1.ResourceQuota
		wantCreate  int64
		wantBlocker string
		wantNote    string
	}{
		"no quota": {wantCreate: 5},
		"Job count used up": {
			quotas:     []corev1.ResourceQuota{quota("team", map[corev1.ResourceName]string{"count/jobs.batch": "10"}, map[corev1.ResourceName]string{"count/jobs.batch": "10"})},
			wantCreate: 0, wantBlocker: "ResourceQuota team: count/jobs.batch used 10 of 10",
		},
		"pods nearly used up": {
			quotas:     []corev1.ResourceQuota{quota("team", map[corev1.ResourceName]string{"pods": "20"}, map[corev1.ResourceName]string{"pods": "19"})},
			wantCreate: 5, wantNote: "ResourceQuota team: pods used 19 of 20",
		},
		"Secrets do not matter in count mode": {
			quotas:     []corev1.ResourceQuota{quota("team", map[corev1.ResourceName]string{"secrets": "1"}, map[corev1.ResourceName]string{"secrets": "1"})},
			wantCreate: 5,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			x := Explain(Input{ScaledJob: scaledJob(withMax(5), withReading("5", "1")), Quotas: tc.quotas, Now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)})
			if x.Create != tc.wantCreate {
				t.Errorf("Create = %d, want %d (blockers %v)", x.Create, tc.wantCreate, x.Blockers)
			}
			if got := strings.Join(x.Blockers, "\n"); !strings.Contains(got, tc.wantBlocker) || (tc.wantBlocker == "" && got != "") {
				t.Errorf("Blockers = %q, want %q", got, tc.wantBlocker)
			}
			if got := strings.Join(x.Notes, "\n"); !strings.Contains(got, tc.wantNote) {
				t.Errorf("Notes = %q, want %q", got, tc.wantNote)
			}
		})
	}
}

func TestExplainLiveReadings(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		live       []dispatch.LiveReading
		wantCreate int64
		wantFailed []string
	}{
		"a live reading replaces the status one": {
			live: []dispatch.LiveReading{{Name: "orders", Backlog: sources.Backlog{Value: 9, Target: 1, Active: true}}}, wantCreate: 9,
		},
		"a live error fails the trigger": {
			live: []dispatch.LiveReading{{Name: "orders", Err: errors.New("access denied")}}, wantFailed: []string{"orders"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			x := Explain(Input{ScaledJob: scaledJob(withMax(20), withReading("3", "1")), Live: tc.live, Now: now})
			if x.WouldCreate != tc.wantCreate || strings.Join(x.FailedTriggers, ",") != strings.Join(tc.wantFailed, ",") {
				t.Errorf("Explain() would create %d, failed %v; want %d, %v", x.WouldCreate, x.FailedTriggers, tc.wantCreate, tc.wantFailed)
			}
		})
	}
}
